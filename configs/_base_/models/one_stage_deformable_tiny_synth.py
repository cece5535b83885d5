# The tiny one-stage models (configs/_base_/models/one_stage_tiny_synth.py) on Deformable DETR's
# transformer; list it after that file (every key of the DETR transformer there is set here). A
# 64-d transformer with 2 + 2 layers, as the DETR one, over C3, C4, C5 and a stride-64 level (4
# points per head and level, FFN 256); the mask branches attend to the C4 level
# (`feature_level=2`). Reference points and sampling offsets learn at x0.1, as Deformable DETR's.
model = dict(
    transformer=dict(type='DeformableTransformer', d_model=64, nhead=8, num_encoder_layers=2,
                     num_decoder_layers=2, dim_feedforward=256, dropout=0.0,
                     num_feature_levels=4, enc_n_points=4, dec_n_points=4),
)
optimizer = dict(paramwise_cfg=dict(custom_keys={
    '*.reference_points': dict(lr_mult=0.1),
    '*.sampling_offsets': dict(lr_mult=0.1),
}))
