# CPU-sized PSGTR on the synthetic PSG set: a randomly initialised, frozen ResNet-18 (no pretrained
# weights; training it from scratch without batch statistics is unstable and twice as slow on a CPU),
# a 64-d transformer with 2+2 layers, 30 triplet queries, images of 128-160 px.
#   python tools/make_synth_psg.py --out data/psg_synth --num-train 400 --num-test 100
#   python tools/train.py configs/psgtr/psgtr_tiny_synth.py
_base_ = [
    '../_base_/models/psgtr_r50.py',
    '../_base_/datasets/psg_synth_onestage.py',
    '../_base_/default_runtime.py',
]
model = dict(
    backbone=dict(depth=18, frozen_stages=4, pretrained=None),
    transformer=dict(d_model=64, nhead=8, num_encoder_layers=2, num_decoder_layers=2,
                     dim_feedforward=256, dropout=0.0),
    num_queries=30,
)
# DETR's lr: at 1e-3 the encoder collapses within ~50 iterations (its output stops depending
# on the image) and the model only learns the class and predicate priors
optimizer = dict(type='AdamW', lr=2e-4, weight_decay=1e-4)
optimizer_config = dict(grad_clip=dict(max_norm=1.0, norm_type=2))
lr_config = dict(policy='step', step=[10], warmup='linear', warmup_iters=100, warmup_ratio=0.1)
runner = dict(type='EpochBasedRunner', max_epochs=12)
log_config = dict(interval=20)
evaluation = dict(interval=4, metric=['sgdet', 'PQ'])
load_from = None
work_dir = './work_dirs/psgtr_tiny_synth'
