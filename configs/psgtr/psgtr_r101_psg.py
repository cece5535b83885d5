# PSGTR R101 on PSG, initialised from COCO-panoptic DETR-R101:
#   python tools/convert_detr_checkpoint.py detr-r101-panoptic-40021d53.pth work_dirs/checkpoints/detr_pan_r101.pth \
#       --config configs/psgtr/psgtr_r101_psg.py
_base_ = ['./psgtr_r50_psg.py']
model = dict(backbone=dict(depth=101))
load_from = 'work_dirs/checkpoints/detr_pan_r101.pth'
work_dir = './work_dirs/psgtr_r101_psg'
