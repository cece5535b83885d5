# EGTR-R50 on PSG: EGTR's scene-graph stage in the mask-based setting (PanopticEGTR - segments,
# not boxes, are the graph's nodes). It starts from the Deformable DETR + mask branch pre-trained
# on PSG (configs/egtr/deformable_detr_r50_psg_pretrain.py):
#   torchrun --nproc_per_node=8 tools/train.py configs/egtr/deformable_detr_r50_psg_pretrain.py --launcher pytorch
#   torchrun --nproc_per_node=8 tools/train.py configs/egtr/egtr_r50_psg.py --launcher pytorch
#   python tools/test.py configs/egtr/egtr_r50_psg.py work_dirs/egtr_r50_psg/latest.pth --eval sgdet PQ
#
# EGTR's published hyperparameters (configs/egtr/egtr_r50_vg.py documents how its recipe maps onto
# this engine: batch 64, lr 2e-4 / 2e-6 / 2e-7, 50 + 25 epochs, no crop, multi-label relations)
# adapted to PSG: 133 classes, 56 predicates, frequency table 134 x 134 x 56 counted on the train
# split; and the panoptic setting:
# * a DETR mask branch on the stride-32 level of the deformable memory (mask_feature_level=3);
# * mask losses as DETR-panoptic: sigmoid focal 1, Dice 1; mask terms in the Hungarian matching:
#   focal 1, Dice 1 (beside class 2, L1 5, GIoU 2); the perfect-match cost of the label smoothing
#   includes them (their minimum is 0, so it stays -29.63);
# * inference: queries with softmax class score > 0.3 are the candidate segments, merged per pixel
#   (stuff of one class into one segment), pairs ranked as EGTR's and re-indexed onto them.
# Every image needs at most 200 segments (num_queries); one with more stops training with its
# image_id named.
_base_ = [
    '../_base_/models/egtr_r50.py',
    '../_base_/datasets/psg_onestage.py',
    '../_base_/default_runtime.py',
]
data_root = 'data/coco/'  # --cfg-options data_root=DIR ann_file=FILE move the data and the counts
ann_file = 'data/psg/psg.json'
model = dict(
    type='PanopticEGTR',
    num_classes=133,
    num_predicates=56,
    matcher=dict(cost_mask=1.0, cost_dice=1.0),
    loss_weights=dict(mask=1.0, dice=1.0),
    mask_feature_level=3,
    # training counts of (subject, object, predicate) for the frequency bias, computed once from
    # the train split and cached
    freq_dataset=dict(type='PSGDataset', ann_file=ann_file, data_root=data_root, split='train'),
    freq_cache='work_dirs/checkpoints/psg_train_triplet_counts.npy',
    test_cfg=dict(object_score_thr=0.3),
)
# EGTR's scene-graph stage: flip and DETR multi-scale resizing, no crop
detr_scales = [(1333, short) for short in range(480, 801, 32)]
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='LoadPanopticAnnotations', with_rel=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Resize', scales=detr_scales, keep_ratio=True),
    dict(type='Normalize', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
    dict(type='Pad', size_divisor=1),
    dict(type='PackSample'),
]
# relations multi-label, as EGTR's dense targets: every annotated predicate of a pair is a
# positive ('sample_one' would turn a pair's other predicates into negatives)
data = dict(samples_per_gpu=8, workers_per_gpu=4,
            train=dict(rel_mode='dedup', pipeline=train_pipeline))
# lr multipliers: pre-trained detector and mask branch x0.01 (2e-6); backbone, reference points
# and sampling offsets x0.001 (2e-7); everything else - the relation head - x1 (2e-4)
optimizer = dict(
    type='AdamW', lr=2e-4, weight_decay=1e-4,
    paramwise_cfg=dict(custom_keys={
        'backbone': dict(lr_mult=0.001),
        '*.reference_points': dict(lr_mult=0.001),
        '*.sampling_offsets': dict(lr_mult=0.001),
        'transformer': dict(lr_mult=0.01),
        'input_proj': dict(lr_mult=0.01),
        'query_embed': dict(lr_mult=0.01),
        'class_embed': dict(lr_mult=0.01),
        'bbox_embed': dict(lr_mult=0.01),
        'bbox_attention': dict(lr_mult=0.01),
        'mask_head': dict(lr_mult=0.01),
    }))
optimizer_config = dict(grad_clip=dict(max_norm=0.1, norm_type=2))
lr_config = dict(policy='step', step=[50])
runner = dict(max_epochs=75)
checkpoint_config = dict(interval=1, max_keep_ckpts=3)
evaluation = dict(interval=5, metric=['sgdet', 'PQ'], save_best='sgdet/openpsg/R@20')
load_from = 'work_dirs/deformable_detr_r50_psg_pretrain/latest.pth'
work_dir = './work_dirs/egtr_r50_psg'
