# Deformable DETR-R50 with DETR's mask branch pre-trained on PSG: the detector EGTR's PSG setting
# starts from (EGTR's pretrain_detr.py, with masks). It is the PanopticEGTR model with its relation
# losses switched off (weights 0: the relation head runs but learns nothing), so every detector
# and mask-branch weight carries over to configs/egtr/egtr_r50_psg.py by name:
#   torchrun --nproc_per_node=8 tools/train.py configs/egtr/deformable_detr_r50_psg_pretrain.py --launcher pytorch
# Recipe as configs/egtr/deformable_detr_r50_vg_pretrain.py (EGTR's): ImageNet ResNet-50, 200
# queries, auxiliary decoder losses (class and box; the mask terms are on the last layer), AdamW
# lr 1e-4 (backbone, reference points, sampling offsets 1e-5), weight decay 1e-4, gradient
# clipping 0.1, batch 32 (8 GPUs x 4), 200 epochs with the lr step after 150; flip, then either
# DETR multi-scale resizing or resize / relation-preserving random crop / multi-scale resizing.
# Mask losses and mask matching costs: focal 1, Dice 1. PQ is evaluated every 5 epochs (the
# relations of this model are untrained).
_base_ = [
    '../_base_/models/egtr_r50.py',
    '../_base_/datasets/psg_onestage.py',
    '../_base_/default_runtime.py',
]
model = dict(
    type='PanopticEGTR',
    backbone=dict(pretrained=True),
    num_classes=133,
    num_predicates=56,
    aux_loss=True,
    matcher=dict(cost_mask=1.0, cost_dice=1.0),
    loss_weights=dict(mask=1.0, dice=1.0, relation=0.0, connectivity=0.0),
    mask_feature_level=3,
    use_freq_bias=False,
    test_cfg=dict(object_score_thr=0.3),
)
data = dict(samples_per_gpu=4, workers_per_gpu=4)
optimizer = dict(
    type='AdamW', lr=1e-4, weight_decay=1e-4,
    paramwise_cfg=dict(custom_keys={
        'backbone': dict(lr_mult=0.1),
        '*.reference_points': dict(lr_mult=0.1),
        '*.sampling_offsets': dict(lr_mult=0.1),
    }))
optimizer_config = dict(grad_clip=dict(max_norm=0.1, norm_type=2))
lr_config = dict(policy='step', step=[150])
runner = dict(max_epochs=200)
checkpoint_config = dict(interval=5, max_keep_ckpts=3)
evaluation = dict(interval=5, metric=['PQ'])
work_dir = './work_dirs/deformable_detr_r50_psg_pretrain'
