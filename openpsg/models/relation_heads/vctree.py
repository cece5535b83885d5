"""VCTree: object and edge contexts from tree LSTMs over trees built from learned pair scores.

Tang et al., "Learning to Compose Dynamic Tree Structures for Visual Contexts", CVPR 2019, as
configured in OpenPSG (vision-only pair scores, no frequency co-prior, no reinforcement learning):
a pair-score network rates every ordered pair of an image, a tree is grown from the scores
(:mod:`.vctree_tree`), bidirectional tree LSTMs give object and edge contexts, and the pair scores
are trained with a binary "are these two objects related" loss.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_area, box_iou

from ...registry import MODELS
from .context import ContextHead, ContextPairClassifier
from .contracts import RelationInputs, RelationOutputs, RelationTargets
from .embeddings import NUM_BOX_FEATS, expected_embedding
from .head import RelationHead
from .vctree_tree import BiTreeLSTM, TreeLabelDecoder, build_forest

NUM_OVERLAP_FEATS = 6


def overlap_features(boxes: torch.Tensor, img_shape: tuple[int, int]) -> torch.Tensor:
    """``(N, 6)`` overlap statistics of each box with the other boxes of its image: number of boxes
    it intersects, total intersection area / image area, total IoU, mean intersection / image
    area and mean IoU over the intersecting boxes, and its own area / image area."""
    img_area = float(img_shape[0] * img_shape[1])
    lt = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(2)
    inter.fill_diagonal_(0)
    iou = box_iou(boxes, boxes)
    iou.fill_diagonal_(0)
    count = (inter > 0).sum(1).to(boxes.dtype)
    total_inter, total_iou = inter.sum(1) / img_area, iou.sum(1)
    per = count.clamp(min=1)
    return torch.stack([count, total_inter, total_iou, total_inter / per, total_iou / per,
                        box_area(boxes) / img_area], 1)


class PairScorer(nn.Module):
    """Vision-only tree scores: per object ``[reduce(roi); reduce(embedding); box embedding;
    overlap embedding]`` (4 x 128) -> ``score_pre`` -> subject and object projections ``s``, ``o``
    (``hidden_dim``); ``logit[i, j] = Linear([s_i * o_j; s_i; o_j])`` for every ordered pair."""

    def __init__(self, roi_dim: int, embed_dim: int, hidden_dim: int, part_dim: int = 128) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.roi_reduce = nn.Linear(roi_dim, part_dim)
        self.embed_reduce = nn.Linear(embed_dim, part_dim)
        self.box_embed = nn.Sequential(nn.Linear(NUM_BOX_FEATS, part_dim), nn.ReLU(inplace=True))
        self.overlap_embed = nn.Sequential(nn.Linear(NUM_OVERLAP_FEATS, part_dim),
                                           nn.ReLU(inplace=True))
        self.score_pre = nn.Linear(4 * part_dim, hidden_dim)
        self.score_sub = nn.Linear(hidden_dim, hidden_dim)
        self.score_obj = nn.Linear(hidden_dim, hidden_dim)
        self.vision_prior = nn.Linear(3 * hidden_dim, 1)

    def forward(self, x: RelationInputs, label_embed: torch.Tensor) -> list[torch.Tensor]:
        """``(N_i, N_i)`` pair-score logits of every image."""
        overlap = torch.cat([overlap_features(b, s) for b, s in zip(x.boxes, x.img_shapes)])
        parts = torch.cat([self.roi_reduce(x.obj_feats), self.embed_reduce(label_embed),
                           self.box_embed(x.box_features()), self.overlap_embed(overlap)], 1)
        pre = F.relu(self.score_pre(parts))
        sub, obj = F.relu(self.score_sub(pre)), F.relu(self.score_obj(pre))
        w_prod, w_sub, w_obj = self.vision_prior.weight[0].split(self.hidden_dim)
        maps = []
        for s, o in zip(x.split_objects(sub), x.split_objects(obj)):
            maps.append((s * w_prod) @ o.t() + (s @ w_sub)[:, None] + (o @ w_obj)[None, :]
                        + self.vision_prior.bias)
        return maps


@MODELS.register()
class VCTreeHead(ContextHead):
    """VCTree relation head.

    :class:`PairScorer` rates all ordered pairs; one tree per image is built from the sigmoid
    scores; object context = bidirectional tree LSTM over ``[roi feature; label embedding;
    position embedding]`` (``hidden_dim``); object labels: PredCls keeps the ground truth,
    otherwise :class:`~.vctree_tree.TreeLabelDecoder` (teacher forced in training); edge context =
    bidirectional tree LSTM over ``[embedding of the object label; object context; roi feature]``;
    predicates from :class:`~.context.ContextPairClassifier` (ReLU after ``post_emb``).
    Extra loss ``loss_vctree_binary``: binary cross-entropy of the pair-score logits against "the
    pair holds a training positive in either direction", averaged per image, then over images.

    Options: those of :class:`~.context.ContextHead` and :class:`~.head.RelationHead`.
    """

    default_loss_weights = {**RelationHead.default_loss_weights, 'vctree_binary': 1.0}

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        d, h, e, pos_dim = self.roi_dim, self.hidden_dim, self.embed_dim, self.pos_dim
        self.pair_scorer = PairScorer(d, e, h)
        obj_in = d + e + pos_dim
        self.obj_ctx_tree = BiTreeLSTM(obj_in, h)
        self.decoder = None if self.predcls else TreeLabelDecoder(h, h, self.class_embedding())
        self.edge_ctx_tree = BiTreeLSTM(e + h + d, h)
        self.classifier = ContextPairClassifier(h, d, self.pooling_dim, self.num_predicates + 1,
                                                emb_relu=True)

    def context(self, x: RelationInputs) -> RelationOutputs:
        label_embed = expected_embedding(self.obj_embed, x.label_dists)
        pair_logits = self.pair_scorer(x, label_embed)
        forest = build_forest([torch.sigmoid(m) for m in pair_logits], x.obj_feats.device)
        obj_in = torch.cat([x.obj_feats, label_embed, self.pos_embed(x.box_features())], 1)
        obj_ctx = self.obj_ctx_tree(obj_in, forest)
        if self.decoder is None:  # PredCls: the labels are given
            obj_logits, obj_labels = x.object_outputs()
        else:
            obj_logits, obj_labels = self.decoder(obj_ctx, forest, x.teacher_labels)
        edge_in = torch.cat([self.edge_embed(obj_labels), obj_ctx, x.obj_feats], 1)
        edge_ctx = self.edge_ctx_tree(edge_in, forest)
        rel_logits = self.classifier(edge_ctx, x.union_feats, x.global_pairs)
        return RelationOutputs(obj_logits=obj_logits, obj_labels=obj_labels, rel_logits=rel_logits,
                               pair_logits=pair_logits)

    def extra_losses(self, x: RelationInputs, out: RelationOutputs,
                     targets: Sequence[RelationTargets]) -> dict[str, torch.Tensor]:
        per_image = [F.binary_cross_entropy_with_logits(logits, t.related.to(logits.dtype))
                     for logits, t in zip(out.pair_logits, targets)]
        return {'loss_vctree_binary': torch.stack(per_image).mean()}
