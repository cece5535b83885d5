# Panoptic FPN R50 trained on PSG (OpenPSG's panoptic baseline), evaluated with PQ.
#   python -m openpsg.models.segmenters.coco_weights --variant v1 \
#       --out work_dirs/checkpoints/maskrcnn_r50_fpn_coco_psg.pth
#   python tools/train.py configs/panoptic_fpn/panoptic_fpn_r50_fpn_1x_psg.py
#   python tools/test.py configs/panoptic_fpn/panoptic_fpn_r50_fpn_1x_psg.py \
#       work_dirs/panoptic_fpn_r50_fpn_1x_psg/latest.pth --eval PQ
_base_ = [
    '../_base_/models/panoptic_fpn_r50_fpn_psg.py',
    '../_base_/datasets/psg_panoptic.py',
    '../_base_/schedules/schedule_1x.py',
    '../_base_/default_runtime.py',
]

data = dict(samples_per_gpu=8)
optimizer = dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001)
optimizer_config = dict(grad_clip=dict(max_norm=35, norm_type=2))
lr_config = dict(policy='step', step=[8, 11], warmup='linear', warmup_iters=500, warmup_ratio=1 / 3)
runner = dict(max_epochs=12)
evaluation = dict(interval=1, metric=['PQ'], save_best='PQ')
# torchvision's COCO Mask R-CNN (backbone, RPN, thing branch), converted by the command above;
# the semantic head starts from scratch.
load_from = 'work_dirs/checkpoints/maskrcnn_r50_fpn_coco_psg.pth'
