# PSGTR R50 on PSG on Deformable DETR's transformer (configs/_base_/models/one_stage_deformable_r50.py):
# PSGTR's heads, losses, matching and 60-epoch schedule (lr x0.1 after epoch 40), Deformable DETR's
# transformer and learning rates, from an ImageNet ResNet-50:
#   torchrun --nproc_per_node=8 tools/train.py configs/psgtr/psgtr_deformable_r50_psg.py --launcher pytorch
#   python tools/test.py configs/psgtr/psgtr_deformable_r50_psg.py work_dirs/psgtr_deformable_r50_psg/latest.pth --eval sgdet PQ
_base_ = [
    './psgtr_r50_psg.py',
    '../_base_/models/one_stage_deformable_r50.py',
]
work_dir = './work_dirs/psgtr_deformable_r50_psg'
