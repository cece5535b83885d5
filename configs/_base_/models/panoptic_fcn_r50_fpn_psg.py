# PanopticFCN (Li et al., CVPR'21), ResNet-50 FPN P2-P7, for PSG's 80 thing + 53 stuff classes:
# kernels generated at thing centres and stuff regions on P3-P7, applied to a stride-4 map.
# Every value is the released code's default (its R50 configs).
model = dict(
    type='PanopticFCN',
    # Stem and layer1 frozen. The segmenter's training config starts from ImageNet weights
    # (pretrained=True); as the first stage of a two-stage model the weights come from the
    # trained segmenter's checkpoint instead.
    backbone=dict(depth=50, pretrained=False, frozen_stages=1, out_channels=256),
    num_things=80,
    num_stuff=53,
    position_head=dict(channels=256, num_convs=3, num_groups=32, deform=True),
    kernel_head=dict(channels=256, num_convs=3, num_groups=32),
    feature_encoder=dict(merge_channels=256, merge_groups=32, channels=64, num_convs=3),
    # sqrt(box area) ranges of P3..P7 in input pixels (overlapping), 7 kernels per thing.
    train_cfg=dict(instance_scales=((1, 64), (32, 128), (64, 256), (128, 512), (256, 2048)),
                   pos_num=7, min_overlap=0.7, sigma_factor=3.0, focal_alpha=0.25,
                   focal_gamma=2.0),
    loss_weights=dict(pos_th=1.0, pos_st=1.0, seg_th=3.0, seg_st=3.0),
    # stuff_area_limit is in pixels of the image being segmented (the original image for
    # predictions and PQ). The FAST variant: center_thr=0.2, stuff_thr=0.1.
    test_cfg=dict(smooth_kernels=(3, 3, 3, 5, 5), nms_kernel=3, peaks_per_level=50,
                  center_thr=0.05, stuff_thr=0.05, fusion_thr=0.9, mask_thr=0.4,
                  rescore_thr=0.05, max_per_img=100, score_thr=0.2, overlap_thr=0.5,
                  stuff_area_limit=4096),
)
