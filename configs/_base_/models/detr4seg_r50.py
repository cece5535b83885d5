# DETR panoptic segmentation (DETR-R50 + attention-map mask head) predicting the 133 PSG classes.
# Weights come from `load_from` (a converted DETR-panoptic checkpoint), so the backbone is built
# without ImageNet weights; set backbone.pretrained=True to start from torchvision's ImageNet ResNet.
model = dict(
    type='DETR4Seg',
    backbone=dict(type='ResNet', depth=50, frozen_stages=1, pretrained=None),
    transformer=dict(d_model=256, nhead=8, num_encoder_layers=6, num_decoder_layers=6,
                     dim_feedforward=2048, dropout=0.1),
    num_classes=133,
    num_queries=100,
    aux_loss=True,
    eos_coef=0.1,
    matcher=dict(cost_class=1.0, cost_bbox=5.0, cost_giou=2.0),
    loss_weights=dict(ce=1.0, bbox=5.0, giou=2.0, mask=1.0, dice=1.0),
    focal_alpha=0.25,
    focal_gamma=2.0,
    test_cfg=dict(score_thr=0.85),
)
