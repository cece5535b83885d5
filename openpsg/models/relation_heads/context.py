"""What MOTIFS and VCTree share: the base of heads that classify pairs from per-object edge
contexts (:class:`ContextHead`) and their predicate classifier (:class:`ContextPairClassifier`)."""
from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .embeddings import GLOVE_FILE, PositionEmbedding, class_embedding
from .head import RelationHead


class ContextPairClassifier(nn.Module):
    """MOTIFS/VCTree predicate classifier over edge contexts ``(K, ctx_dim)``.

    ``post_emb`` (ctx -> 2 ctx, ReLU for VCTree) is split into a subject half and an object half;
    a pair's ``[subject half; object half]`` goes through ``post_cat`` (2 ctx -> pooling_dim), is
    multiplied by the union feature projected to ``pooling_dim`` and classified by
    ``rel_compress`` (pooling_dim -> P + 1).
    """

    def __init__(self, ctx_dim: int, roi_dim: int, pooling_dim: int, num_outputs: int,
                 emb_relu: bool = False) -> None:
        super().__init__()
        self.ctx_dim = ctx_dim
        self.post_emb = nn.Linear(ctx_dim, 2 * ctx_dim)
        self.emb_relu = emb_relu
        self.post_cat = nn.Linear(2 * ctx_dim, pooling_dim)
        self.up_dim = nn.Linear(roi_dim, pooling_dim) if roi_dim != pooling_dim else nn.Identity()
        self.rel_compress = nn.Linear(pooling_dim, num_outputs)
        nn.init.normal_(self.post_emb.weight, 0.0, 10.0 * (1.0 / ctx_dim) ** 0.5)
        nn.init.zeros_(self.post_emb.bias)
        for layer in (self.post_cat, self.rel_compress, self.up_dim):
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def forward(self, edge_ctx: torch.Tensor, union_feats: torch.Tensor,
                pairs: torch.Tensor) -> torch.Tensor:
        """Logits ``(R, num_outputs)`` of ``pairs (R, 2)`` (rows of ``edge_ctx``) with union
        features ``(R, roi_dim)``."""
        emb = self.post_emb(edge_ctx)
        if self.emb_relu:
            emb = F.relu(emb)
        head, tail = emb.split(self.ctx_dim, dim=1)
        pair_rep = self.post_cat(torch.cat([head[pairs[:, 0]], tail[pairs[:, 1]]], 1))
        return self.rel_compress(pair_rep * self.up_dim(union_feats))


class ContextHead(RelationHead):
    """Base of the MOTIFS and VCTree heads: object contexts over ``[roi feature; label embedding;
    position embedding]``, edge contexts over ``[label embedding; ...]``, predicates from a
    :class:`ContextPairClassifier`. Builds ``obj_embed`` and ``edge_embed`` (class-name
    embeddings of the object and edge context inputs) and ``pos_embed``; :attr:`class_embedding`
    builds another one (for a label decoder). The defaults are OpenPSG's settings.

    Args:
        hidden_dim: context size; embed_dim: class-name embedding size; pooling_dim: pair
            representation size; pos_dim: box position embedding size.
        class_names: the C class names of the word embeddings (default: the PSG classes).
        glove_file: GloVe text file of the class-name embeddings (random vectors if missing).
        **kwargs: the :class:`~.head.RelationHead` options.
    """

    def __init__(self, hidden_dim: int = 512, embed_dim: int = 200, pooling_dim: int = 4096,
                 pos_dim: int = 128, class_names: Sequence[str] | None = None,
                 glove_file: str | None = GLOVE_FILE, **kwargs) -> None:
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.embed_dim = embed_dim
        self.pooling_dim = pooling_dim
        self.pos_dim = pos_dim
        self.class_embedding = partial(class_embedding, class_names, self.num_classes, embed_dim,
                                       glove_file)
        self.obj_embed, self.edge_embed = self.class_embedding(), self.class_embedding()
        self.pos_embed = PositionEmbedding(pos_dim)
