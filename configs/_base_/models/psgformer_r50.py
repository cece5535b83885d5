# PSGFormer (OpenPSG): one DETR-R50 encoder, an object decoder (100 queries, DETR-panoptic heads)
# and a relation decoder (100 queries) whose queries point at their subject and object among the
# object queries. The object branch keeps DETR's parameter names, so a converted DETR-panoptic
# checkpoint (`load_from`) initialises all of it; the relation branch starts fresh.
model = dict(
    type='PSGFormer',
    backbone=dict(type='ResNet', depth=50, frozen_stages=1, pretrained=None),
    transformer=dict(d_model=256, nhead=8, num_encoder_layers=6, num_decoder_layers=6,
                     dim_feedforward=2048, dropout=0.1),
    num_classes=133,
    num_predicates=56,
    num_queries=100,
    num_rel_queries=100,
    aux_loss=True,
    eos_coef=0.02,
    no_relation_weight=0.02,
    temperature=0.1,
    matcher=dict(cls=4.0, bbox=3.0, giou=2.0),
    rel_matcher=dict(sub=1.0, obj=1.0, predicate=1.0),
    loss_weights=dict(ce=4.0, bbox=3.0, giou=2.0, mask=1.0, dice=1.0, relation_ce=2.0,
                      sub_pointer=2.0, obj_pointer=2.0),
    focal_alpha=0.25,
    focal_gamma=2.0,
    test_cfg=dict(max_per_img=100, mask_thr=0.85, thing_iou_thr=0.5,
                  claim_thr=0.5),  # single_mpo: pixels no mask claims stay void
    # 'legacy': OpenPSG's published numbers; 'openpsg_panoptic': its eval_pan_rels=True (README)
    output='single_mpo',
    drop_rug_bug=False,  # output='openpsg_panoptic' only: OpenPSG's rug-merged drop
)
