# PSGTR R50 on PSG: OpenPSG's recipe (AdamW 1e-4, backbone x0.1, clip 0.1, 60 epochs, lr x0.1
# after epoch 40, batch 1 per GPU; OpenPSG trained on 4-8 GPUs), initialised from COCO-panoptic DETR:
#   python tools/convert_detr_checkpoint.py detr-r50-panoptic-00ce5173.pth work_dirs/checkpoints/detr_pan_r50.pth \
#       --config configs/psgtr/psgtr_r50_psg.py
#   torchrun --nproc_per_node=8 tools/train.py configs/psgtr/psgtr_r50_psg.py --launcher pytorch
# OpenPSG's published numbers: test with --cfg-options model.output=legacy (README, 'PSGTR and
# PSGFormer').
_base_ = [
    '../_base_/models/psgtr_r50.py',
    '../_base_/datasets/psg_onestage.py',
    '../_base_/schedules/schedule_detr_60e.py',
    '../_base_/default_runtime.py',
]
checkpoint_config = dict(interval=2, max_keep_ckpts=10)
evaluation = dict(interval=2, metric=['sgdet', 'PQ'], save_best='sgdet/openpsg/R@20')
load_from = 'work_dirs/checkpoints/detr_pan_r50.pth'
work_dir = './work_dirs/psgtr_r50_psg'
