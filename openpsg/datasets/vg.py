"""Visual Genome scene graphs in the ``psg.json`` schema, boxes only (OpenPSG's ``data_openpsg.json``)."""
from __future__ import annotations

import numpy as np

from ..registry import DATASETS
from .psg import PSGDataset


@DATASETS.register()
class VGDataset(PSGDataset):
    """Box-only scene graphs: the :class:`PSGDataset` rules without panoptic PNGs.

    Images need ``file_name``, ``height``, ``width``, ``image_id``, ``annotations`` (``bbox``,
    ``category_id``; ``bbox_mode`` optional) and ``relations``; ``segments_info`` and
    ``pan_seg_file_name`` are not read. Pipeline inputs carry ``seg_path=None``,
    ``pan_seg_file_name=None`` and ``segment_ids`` of -1; ground truth has ``id_map=None``, so
    evaluation matches boxes. Arguments are those of :class:`PSGDataset`, with ``data_root`` the
    image folder (e.g. ``data/vg/VG_100K``).
    """

    with_masks = False

    def _id_map(self, row: int) -> np.ndarray | None:
        return None
