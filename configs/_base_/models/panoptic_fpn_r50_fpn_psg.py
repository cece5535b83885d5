# Panoptic FPN, ResNet-50 FPN, for PSG's 80 thing + 53 stuff classes: OpenPSG's first-stage
# detector (Mask R-CNN thing branch + semantic FPN head, heuristic fusion).
# variant='v2' switches to torchvision's maskrcnn_resnet50_fpn_v2 layout (BatchNorm in FPN and
# heads, conv box head, 2-conv RPN); convert its weights with --variant v2.
model = dict(
    type='PanopticFPN',
    variant='v1',
    # The ResNet-50 weights come with load_from (COCO Mask R-CNN); pretrained=True would start
    # from torchvision's ImageNet weights instead.
    backbone=dict(depth=50, pretrained=False, frozen_stages=1),
    num_things=80,
    num_stuff=53,
    rpn=dict(pre_nms_top_n_train=2000, pre_nms_top_n_test=1000,
             post_nms_top_n_train=1000, post_nms_top_n_test=1000, nms_iou_thr=0.7,
             fg_iou_thr=0.7, bg_iou_thr=0.3, batch_size_per_image=256, positive_fraction=0.5),
    roi_head=dict(fg_iou_thr=0.5, bg_iou_thr=0.5, batch_size_per_image=512,
                  positive_fraction=0.25),
    semantic_head=dict(inner_channels=128, num_groups=32, loss_weight=0.5),
    # OpenPSG's panoptic test settings; stuff_area_limit is in pixels of the image being fused
    # (the original image for predictions and PQ).
    test_cfg=dict(score_thr=0.6, nms_iou_thr=0.5, max_per_img=100, mask_thr=0.5, overlap_thr=0.5,
                  stuff_area_limit=4096),
)
