# PSGFormer R50 on PSG on Deformable DETR's transformer (configs/_base_/models/one_stage_deformable_r50.py):
# PSGFormer's heads, pointers, losses, matching and 60-epoch schedule (lr x0.1 after epoch 40),
# Deformable DETR's encoder and two of its decoders (objects, relations) and its learning rates,
# from an ImageNet ResNet-50 (OpenPSG's x0.1 on DETR-pretrained parts does not apply):
#   torchrun --nproc_per_node=8 tools/train.py configs/psgformer/psgformer_deformable_r50_psg.py --launcher pytorch
#   python tools/test.py configs/psgformer/psgformer_deformable_r50_psg.py work_dirs/psgformer_deformable_r50_psg/latest.pth --eval sgdet PQ
_base_ = [
    '../_base_/models/psgformer_r50.py',
    '../_base_/datasets/psg_onestage.py',
    '../_base_/schedules/schedule_detr_60e.py',
    '../_base_/default_runtime.py',
    '../_base_/models/one_stage_deformable_r50.py',
]
find_unused_parameters = True
checkpoint_config = dict(interval=1, max_keep_ckpts=15)
evaluation = dict(interval=1, metric=['sgdet', 'PQ'], save_best='sgdet/openpsg/R@20')
work_dir = './work_dirs/psgformer_deformable_r50_psg'
