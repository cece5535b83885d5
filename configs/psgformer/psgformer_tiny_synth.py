# CPU-sized PSGFormer on the synthetic PSG set: a frozen ResNet-18 taken from the tiny Panoptic FPN
# trained on the same set (as the real PSGFormer starts from a COCO-panoptic DETR; train that
# first), a 64-d transformer with 2 encoder + 2 object-decoder + 2 relation-decoder layers,
# 30 + 30 queries, images of 128-160 px.
#   python tools/make_synth_psg.py --out data/psg_synth --num-train 400 --num-test 100
#   python tools/train.py configs/panoptic_fpn/panoptic_fpn_tiny_synth.py
#   python tools/train.py configs/psgformer/psgformer_tiny_synth.py
_base_ = [
    '../_base_/models/psgformer_r50.py',
    '../_base_/datasets/psg_synth_onestage.py',
    '../_base_/default_runtime.py',
]
model = dict(
    # Frozen, as PSGTR's (configs/psgtr/psgtr_tiny_synth.py): a random frozen trunk learns no
    # thing segment; training layer3-4 costs 75 % more time per epoch for no gain (PSGTR, 6 epochs).
    backbone=dict(depth=18, frozen_stages=4,
                  pretrained='work_dirs/panoptic_fpn_tiny_synth/latest.pth',
                  pretrained_prefix='backbone.body.'),
    transformer=dict(d_model=64, nhead=8, num_encoder_layers=2, num_decoder_layers=2,
                     dim_feedforward=256, dropout=0.0),
    num_queries=30,
    # The transformer reads C4 (stride 16): C5 leaves 4x5 tokens on a 128-px image. PSGTR, 15
    # epochs: PQ things 2.2 vs 0.6, R@20 9.5 vs 8.0 with C5, for 17 % more time.
    feature_level=2,
    num_rel_queries=30,
)
# DETR's lr: with a random trunk, 1e-3 collapses the encoder within ~50 iterations (its output
# stops depending on the image) and the model only learns the class and predicate priors
optimizer = dict(type='AdamW', lr=2e-4, weight_decay=1e-4)
optimizer_config = dict(grad_clip=dict(max_norm=1.0, norm_type=2))
lr_config = dict(policy='step', step=[10], warmup='linear', warmup_iters=100, warmup_ratio=0.1)
runner = dict(type='EpochBasedRunner', max_epochs=12)
log_config = dict(interval=20)
evaluation = dict(interval=4, metric=['sgdet', 'PQ'])
find_unused_parameters = True
load_from = None
work_dir = './work_dirs/psgformer_tiny_synth'
