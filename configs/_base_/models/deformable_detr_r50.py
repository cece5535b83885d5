# Deformable DETR-R50 (single-stage, no box refinement): C3-C5 + one stride-64 level, 6 + 6
# layers of width 256, 8 heads, 4 points per head and level, FFN 1024, 300 queries, sigmoid focal
# classification over the 133 PSG classes (no "no object" logit) -- fundamentalvision/Deformable-DETR's
# defaults. Boxes only: predictions carry no masks.
model = dict(
    type='DeformableDETR',
    backbone=dict(type='ResNet', depth=50, frozen_stages=1, pretrained=True),
    transformer=dict(d_model=256, nhead=8, num_encoder_layers=6, num_decoder_layers=6,
                     dim_feedforward=1024, dropout=0.1, num_feature_levels=4, enc_n_points=4,
                     dec_n_points=4),
    num_classes=133,
    num_queries=300,
    aux_loss=True,
    matcher=dict(cost_class=2.0, cost_bbox=5.0, cost_giou=2.0, alpha=0.25, gamma=2.0),
    loss_weights=dict(ce=2.0, bbox=5.0, giou=2.0),
    focal_alpha=0.25,
    focal_gamma=2.0,
    test_cfg=dict(max_per_img=100),
)
