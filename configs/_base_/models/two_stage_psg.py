# Two-stage scene-graph model: a frozen panoptic segmenter followed by a relation head. List it
# after default_runtime.py: the runtime keys below must win. Each config sets `model.segmenter`
# (any registered segmenter; configs read it from the segmenter's own config with read_config)
# and `model.segmenter_checkpoint`. The relation head's options here are the ones every head
# takes (OpenPSG's settings); its input channels and feature strides come from the segmenter.
# Each head's config sets its `type`, and its own options (context sizes, word embeddings)
# default to OpenPSG's values in the head's class.
model = dict(
    type='TwoStageSceneGraph',
    segmenter=None,  # set by each config
    segmenter_checkpoint=None,  # set by each config: the trained segmenter's checkpoint
    use_gt_box=True,  # PredCls; SGCls: use_gt_label=False; SGDet: both False
    use_gt_label=True,
    relation_head=dict(
        num_classes=133,
        num_predicates=56,
        roi_size=7,
        finest_scale=56,
        roi_dim=1024,
        with_mask_feats=False,
        rect_coord_bug=False,
        use_bias=False,
        freq_cache=None,
        freq_ann_file=None,
        sampler=dict(num_rel_per_image=1024, pos_fraction=0.25, num_sample_per_gt_rel=4,
                     pos_iou_thr=0.5),
    ),
)
# Only the relation head trains; the segmenter's weights come from segmenter_checkpoint.
freeze_modules = ['segmenter']
find_unused_parameters = True
load_from = None
evaluation = dict(_delete_=True, interval=1, metric=['predcls'])
