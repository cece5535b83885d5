"""Class vocabularies and the label conventions used everywhere inside ``openpsg``.

Conventions (one place, converted only at file boundaries):

* **Object classes** are 0-based: PSG uses ``0..79`` for the 80 COCO "thing" classes and ``80..132``
  for the 53 COCO-panoptic "stuff" classes, exactly as ``category_id`` is stored in ``psg.json``.
  Models that need a "no object" class use index ``num_classes`` (133 for PSG), DETR style.
* **Predicates** are 0-based ``0..55`` exactly as stored in ``psg.json``. Models that need a
  "no relation" class use index ``num_predicates`` (56 for PSG), the last index, like objects.
* **Relations** are integer rows ``(subject_index, object_index, predicate)`` where the indices
  point into the image's list of segments.
* **Modes** (:data:`MODES`) name the scene-graph task by what the ground truth gives the model:
  ``predcls`` the segments and their labels, ``sgcls`` the segments, ``sgdet`` nothing.

File formats that differ are converted at their reader/writer only:
the challenge submission (``relation.json``) stores 1-based predicates and 1-based
``category_id`` (see :mod:`openpsg.evaluation.submission`).
"""
from __future__ import annotations

THING_CLASSES: tuple[str, ...] = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck', 'boat',
    'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog',
    'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella',
    'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite',
    'baseball bat', 'baseball glove', 'skateboard', 'surfboard', 'tennis racket', 'bottle',
    'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich', 'orange',
    'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch', 'potted plant',
    'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote', 'keyboard', 'cell phone',
    'microwave', 'oven', 'toaster', 'sink', 'refrigerator', 'book', 'clock', 'vase', 'scissors',
    'teddy bear', 'hair drier', 'toothbrush')

STUFF_CLASSES: tuple[str, ...] = (
    'banner', 'blanket', 'bridge', 'cardboard', 'counter', 'curtain', 'door-stuff', 'floor-wood',
    'flower', 'fruit', 'gravel', 'house', 'light', 'mirror-stuff', 'net', 'pillow', 'platform',
    'playingfield', 'railroad', 'river', 'road', 'roof', 'sand', 'sea', 'shelf', 'snow', 'stairs',
    'tent', 'towel', 'wall-brick', 'wall-stone', 'wall-tile', 'wall-wood', 'water-other',
    'window-blind', 'window-other', 'tree-merged', 'fence-merged', 'ceiling-merged',
    'sky-other-merged', 'cabinet-merged', 'table-merged', 'floor-other-merged', 'pavement-merged',
    'mountain-merged', 'grass-merged', 'dirt-merged', 'paper-merged', 'food-other-merged',
    'building-other-merged', 'rock-merged', 'wall-other-merged', 'rug-merged')

CLASSES: tuple[str, ...] = THING_CLASSES + STUFF_CLASSES

PREDICATES: tuple[str, ...] = (
    'over', 'in front of', 'beside', 'on', 'in', 'attached to', 'hanging from', 'on back of',
    'falling off', 'going down', 'painted on', 'walking on', 'running on', 'crossing',
    'standing on', 'lying on', 'sitting on', 'flying over', 'jumping over', 'jumping from',
    'wearing', 'holding', 'carrying', 'looking at', 'guiding', 'kissing', 'eating', 'drinking',
    'feeding', 'biting', 'catching', 'picking', 'playing with', 'chasing', 'climbing', 'cleaning',
    'playing', 'touching', 'pushing', 'pulling', 'opening', 'cooking', 'talking to', 'throwing',
    'slicing', 'driving', 'riding', 'parked on', 'driving on', 'about to hit', 'kicking',
    'swinging', 'entering', 'exiting', 'enclosing', 'leaning on')

#: The scene-graph tasks, by what the ground truth gives (module docstring).
MODES: tuple[str, ...] = ('predcls', 'sgcls', 'sgdet')
#: The modes that take the ground-truth segments of each image.
GT_SEGMENT_MODES: tuple[str, ...] = ('predcls', 'sgcls')

NUM_THING_CLASSES = len(THING_CLASSES)  # 80
NUM_CLASSES = len(CLASSES)  # 133
NUM_PREDICATES = len(PREDICATES)  # 56

assert NUM_THING_CLASSES == 80 and NUM_CLASSES == 133 and NUM_PREDICATES == 56
