"""Drawing panoptic segmentations and scene graphs (ground truth or predictions) with Pillow."""
from .draw import (compose_sample_figure, draw_boxes, draw_panoptic, draw_relations, label_point,
                   relation_lines, save_png, segment_names, side_by_side, text_panel)
from .graph import draw_scene_graph, force_layout, format_score, scene_graph_layout
from .palette import PALETTE_SIZE, class_colors, instance_colors

__all__ = [
    'compose_sample_figure', 'draw_boxes', 'draw_panoptic', 'draw_relations', 'label_point',
    'relation_lines', 'save_png', 'segment_names', 'side_by_side', 'text_panel', 'PALETTE_SIZE',
    'class_colors', 'instance_colors', 'draw_scene_graph', 'force_layout', 'format_score',
    'scene_graph_layout',
]
