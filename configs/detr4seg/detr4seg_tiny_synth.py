# CPU-sized DETR4Seg on the synthetic PSG set: ResNet-18 from scratch, 64-d transformer with 2+2
# layers, 20 queries; 0.5-1 s per iteration of 2 images on one CPU core. DETR learns slowly from
# scratch (classes and boxes first, masks once the matching has settled), so the PQ of a short run
# only shows that the pipeline works.
#   python tools/make_synth_psg.py --out data/psg_synth --num-train 900 --num-test 100
#   python tools/train.py configs/detr4seg/detr4seg_tiny_synth.py
_base_ = [
    '../_base_/models/detr4seg_r50.py',
    '../_base_/datasets/psg_synth_onestage.py',
    '../_base_/default_runtime.py',
]
model = dict(
    backbone=dict(depth=18, frozen_stages=-1, pretrained=None),
    transformer=dict(d_model=64, nhead=8, num_encoder_layers=2, num_decoder_layers=2,
                     dim_feedforward=256, dropout=0.0),
    num_queries=20,
    test_cfg=dict(score_thr=0.5),
)
optimizer = dict(type='AdamW', lr=3e-4, weight_decay=1e-4,
                 paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
optimizer_config = dict(grad_clip=dict(max_norm=1.0, norm_type=2))
lr_config = dict(policy='step', step=[10])
runner = dict(max_epochs=12)
evaluation = dict(interval=4, metric=['PQ'])
load_from = None
work_dir = './work_dirs/detr4seg_tiny_synth'
