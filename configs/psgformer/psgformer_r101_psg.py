# PSGFormer R101 on PSG (lr x0.1 after epoch 48), initialised from COCO-panoptic DETR-R101:
#   python tools/convert_detr_checkpoint.py detr-r101-panoptic-40021d53.pth work_dirs/checkpoints/detr_pan_r101.pth \
#       --config configs/psgformer/psgformer_r101_psg.py
_base_ = ['./psgformer_r50_psg.py']
model = dict(backbone=dict(depth=101))
lr_config = dict(step=[48])
checkpoint_config = dict(interval=12, max_keep_ckpts=10)
load_from = 'work_dirs/checkpoints/detr_pan_r101.pth'
work_dir = './work_dirs/psgformer_r101_psg'
