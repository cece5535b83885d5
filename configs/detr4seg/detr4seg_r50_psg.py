# DETR-R50 panoptic segmentation fine-tuned on PSG from COCO-panoptic DETR, evaluated with PQ.
# Make the init checkpoint first:
#   python tools/convert_detr_checkpoint.py detr-r50-panoptic-00ce5173.pth \
#       work_dirs/checkpoints/detr_pan_r50.pth --config configs/detr4seg/detr4seg_r50_psg.py
_base_ = [
    '../_base_/models/detr4seg_r50.py',
    '../_base_/datasets/psg_onestage.py',
    '../_base_/default_runtime.py',
]
optimizer = dict(
    type='AdamW', lr=1e-5, weight_decay=1e-4,
    paramwise_cfg=dict(custom_keys={
        'backbone': dict(lr_mult=0.1),
        'bbox_attention': dict(lr_mult=10.0),
        'mask_head': dict(lr_mult=10.0),
    }))
optimizer_config = dict(grad_clip=dict(max_norm=0.1, norm_type=2))
lr_config = dict(policy='step', step=[8])
runner = dict(max_epochs=10)
evaluation = dict(interval=1, metric=['PQ'])
load_from = 'work_dirs/checkpoints/detr_pan_r50.pth'
work_dir = './work_dirs/detr4seg_r50_psg'
