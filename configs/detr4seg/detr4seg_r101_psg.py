# DETR-R101 panoptic segmentation on PSG. Init checkpoint:
#   python tools/convert_detr_checkpoint.py detr-r101-panoptic-40021d53.pth \
#       work_dirs/checkpoints/detr_pan_r101.pth --config configs/detr4seg/detr4seg_r101_psg.py
_base_ = ['./detr4seg_r50_psg.py']
model = dict(backbone=dict(depth=101))
load_from = 'work_dirs/checkpoints/detr_pan_r101.pth'
work_dir = './work_dirs/detr4seg_r101_psg'
