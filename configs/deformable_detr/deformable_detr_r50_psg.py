# Deformable DETR-R50 box detector on PSG with the paper's recipe: ImageNet ResNet-50 (torchvision),
# AdamW lr 2e-4 (backbone 2e-5; reference_points and sampling_offsets x0.1), weight decay 1e-4,
# gradient clipping 0.1, 50 epochs with lr x0.1 after epoch 40, 2 images per GPU on 8 GPUs
# (total batch 32), DETR's multi-scale augmentation:
#   torchrun --nproc_per_node=8 tools/train.py configs/deformable_detr/deformable_detr_r50_psg.py --launcher pytorch
# To fine-tune a COCO Deformable DETR instead, convert its checkpoint and set load_from:
#   python tools/convert_deformable_detr_checkpoint.py r50_deformable_detr-checkpoint.pth \
#       work_dirs/checkpoints/deformable_detr_r50_coco.pth --config configs/deformable_detr/deformable_detr_r50_psg.py
# The detector predicts boxes only, so no PSG metric (scene graphs, PQ) applies during training.
_base_ = [
    '../_base_/models/deformable_detr_r50.py',
    '../_base_/datasets/psg_onestage.py',
    '../_base_/default_runtime.py',
]
data = dict(samples_per_gpu=2)
optimizer = dict(
    type='AdamW', lr=2e-4, weight_decay=1e-4,
    paramwise_cfg=dict(custom_keys={
        'backbone': dict(lr_mult=0.1),
        '*.reference_points': dict(lr_mult=0.1),
        '*.sampling_offsets': dict(lr_mult=0.1),
    }))
optimizer_config = dict(grad_clip=dict(max_norm=0.1, norm_type=2))
lr_config = dict(policy='step', step=[40])
runner = dict(max_epochs=50)
checkpoint_config = dict(interval=5, max_keep_ckpts=3)
evaluation = None
work_dir = './work_dirs/deformable_detr_r50_psg'
