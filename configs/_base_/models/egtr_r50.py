# EGTR (Im et al., CVPR'24) on Deformable DETR-R50 (single-stage, no box refinement): C3-C5 and
# one stride-64 level, 6 + 6 layers of width 256, 8 heads, 4 points, FFN 1024, dropout 0.1 placed
# as in Hugging Face's Deformable DETR that EGTR builds on (on the encoder input and the residual
# branches, not on attention weights or FFN activations), 200 queries, sigmoid focal classification. The relation head reads every decoder layer's
# self-attention; matcher costs and loss weights are EGTR's (class 2, L1 5, GIoU 2; relations 15,
# connectivity 30), no auxiliary decoder losses, adaptive label smoothing 1e-14, 80 hard
# negatives and 80 hard non-matching entries per positive, frequency bias on. Dataset configs
# set num_classes, num_predicates and where the frequency counts come from.
model = dict(
    type='EGTR',
    backbone=dict(type='ResNet', depth=50, frozen_stages=1, pretrained=None),
    transformer=dict(d_model=256, nhead=8, num_encoder_layers=6, num_decoder_layers=6,
                     dim_feedforward=1024, dropout=0.1, num_feature_levels=4, enc_n_points=4,
                     dec_n_points=4, attention_dropout=0.0, activation_dropout=0.0,
                     input_dropout=0.1),
    num_queries=200,
    aux_loss=False,
    matcher=dict(cost_class=2.0, cost_bbox=5.0, cost_giou=2.0, alpha=0.25, gamma=2.0),
    loss_weights=dict(ce=2.0, bbox=5.0, giou=2.0, relation=15.0, connectivity=30.0),
    focal_alpha=0.25,
    focal_gamma=2.0,
    smoothing=1e-14,
    rel_sample_negatives=80,
    rel_sample_nonmatching=80,
    rel_sample_negatives_largest=True,
    rel_sample_nonmatching_largest=True,
    use_freq_bias=True,
    freq_log_count_quirk=False,  # True: EGTR's table of log counts (its published numbers)
    test_cfg=dict(max_per_img=100, graph_constraint=True, logit_adjustment_tau=None),
)
