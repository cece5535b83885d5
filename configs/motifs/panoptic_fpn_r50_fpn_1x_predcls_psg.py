# MOTIFS on a frozen Panoptic FPN R50, PredCls (ground-truth segments and labels), PSG.
# The root of the two-stage configs: the others change the head, the mode or the depth.
#   python tools/train.py configs/panoptic_fpn/panoptic_fpn_r50_fpn_1x_psg.py   # the segmenter
#   python tools/train.py configs/motifs/panoptic_fpn_r50_fpn_1x_predcls_psg.py
#   python tools/test.py configs/motifs/panoptic_fpn_r50_fpn_1x_predcls_psg.py \
#       work_dirs/motifs_panoptic_fpn_r50_fpn_1x_predcls_psg/latest.pth --eval predcls \
#       --cfg-options model.segmenter_checkpoint=None
from openpsg.config import read_config

_base_ = [
    '../_base_/datasets/psg.py',
    '../_base_/schedules/schedule_sg_12e.py',
    '../_base_/default_runtime.py',
    '../_base_/models/two_stage_psg.py',
]

model = dict(
    segmenter=read_config('../_base_/models/panoptic_fpn_r50_fpn_psg.py').model,
    segmenter_checkpoint='work_dirs/panoptic_fpn_r50_fpn_1x_psg/latest.pth',
    # OpenPSG's spatial branch draws the object rectangle from swapped coordinates; the published
    # numbers include it.
    relation_head=dict(type='MotifHead', rect_coord_bug=True),
)
data = dict(samples_per_gpu=16)
work_dir = 'work_dirs/motifs_panoptic_fpn_r50_fpn_1x_predcls_psg'
