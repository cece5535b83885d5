# PSGTR (OpenPSG): DETR-R50 whose 100 queries are (subject, predicate, object) triplets, with a
# subject and an object mask branch. Matching and loss weights are OpenPSG's. Weights come from
# `load_from` (a converted DETR-panoptic checkpoint: backbone, transformer and queries), so the
# backbone is built without ImageNet weights.
model = dict(
    type='PSGTr',
    backbone=dict(type='ResNet', depth=50, frozen_stages=1, pretrained=None),
    transformer=dict(d_model=256, nhead=8, num_encoder_layers=6, num_decoder_layers=6,
                     dim_feedforward=2048, dropout=0.1),
    num_classes=133,
    num_predicates=56,
    num_queries=100,
    aux_loss=True,
    no_relation_weight=0.02,
    matcher=dict(sub_cls=1.0, obj_cls=1.0, predicate_cls=2.0, bbox=5.0, giou=2.0,
                 cls_scale=1.2, box_scale=1.0),
    loss_weights=dict(sub_ce=1.0, obj_ce=1.0, relation_ce=2.0, sub_bbox=5.0, obj_bbox=5.0,
                      sub_giou=2.0, obj_giou=2.0, sub_dice=1.0, obj_dice=1.0),
    test_cfg=dict(max_per_img=100, mask_thr=0.85, dedup_iou_thr=0.5, subject_score_thr=0.5,
                  object_score_thr=0.5, predicate_score_thr=0.3, thing_iou_thr=0.5,
                  claim_thr=0.5),  # single_mpo: pixels no mask claims stay void
    # 'legacy': OpenPSG's published numbers; 'openpsg_panoptic': its eval_pan_rels=True (README)
    output='single_mpo',
    drop_wall_other_bug=False,  # output='openpsg_panoptic' only: OpenPSG's wall-other drop
)
