# CPU-sized EGTR, box setting, on the synthetic PSG set read box-only (133 classes, 56
# predicates; evaluation matches boxes): the tiny one-stage sizing - the ResNet-18 trained by the
# tiny Panoptic FPN, frozen; a 64-d deformable transformer with 2 + 2 layers over C3, C4, C5 and a
# stride-64 level; 30 queries - trained from scratch in one stage (detector and relations
# together, all at lr 2e-4; the real recipe pre-trains the detector first).
#   python tools/make_synth_psg.py --out data/psg_synth --num-train 400 --num-test 100
#   python tools/train.py configs/panoptic_fpn/panoptic_fpn_tiny_synth.py
#   python tools/train.py configs/egtr/egtr_tiny_box_synth.py
#   python tools/test.py configs/egtr/egtr_tiny_box_synth.py work_dirs/egtr_tiny_box_synth/latest.pth --eval sgdet
_base_ = [
    '../_base_/models/egtr_r50.py',
    '../_base_/datasets/psg_synth_boxes.py',
    '../_base_/default_runtime.py',
]
model = dict(
    backbone=dict(depth=18, frozen_stages=4,
                  pretrained='work_dirs/panoptic_fpn_tiny_synth/latest.pth',
                  pretrained_prefix='backbone.body.'),
    transformer=dict(d_model=64, nhead=8, num_encoder_layers=2, num_decoder_layers=2,
                     dim_feedforward=256, dropout=0.0, input_dropout=0.0),
    num_queries=30,
    num_classes=133,
    num_predicates=56,
    freq_dataset=dict(type='VGDataset', ann_file='data/psg_synth/psg.json',
                      data_root='data/psg_synth/', split='train'),
)
data = dict(samples_per_gpu=4, train=dict(rel_mode='dedup'))
optimizer = dict(
    type='AdamW', lr=2e-4, weight_decay=1e-4,
    paramwise_cfg=dict(custom_keys={
        '*.reference_points': dict(lr_mult=0.1),
        '*.sampling_offsets': dict(lr_mult=0.1),
    }))
optimizer_config = dict(grad_clip=dict(max_norm=1.0, norm_type=2))
lr_config = dict(policy='step', step=[10], warmup='linear', warmup_iters=100, warmup_ratio=0.1)
runner = dict(max_epochs=12)
log_config = dict(interval=20)
evaluation = dict(interval=4, metric=['sgdet'], match='box')
work_dir = './work_dirs/egtr_tiny_box_synth'
