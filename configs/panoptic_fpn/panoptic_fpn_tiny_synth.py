# Panoptic FPN on the synthetic PSG set, sized for a CPU: ResNet-18 from scratch, fewer RPN
# proposals and RoI samples, narrower FPN and heads, anchors and the stuff area limit scaled to
# the 128-px images.
#   python tools/make_synth_psg.py --out data/psg_synth --num-train 900 --num-test 100
#   python tools/train.py configs/panoptic_fpn/panoptic_fpn_tiny_synth.py
#   python tools/test.py configs/panoptic_fpn/panoptic_fpn_tiny_synth.py \
#       work_dirs/panoptic_fpn_tiny_synth/latest.pth --eval PQ
_base_ = [
    '../_base_/models/panoptic_fpn_r50_fpn_psg.py',
    '../_base_/datasets/psg_synth.py',
    '../_base_/schedules/schedule_1x.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(depth=18, pretrained=False, frozen_stages=-1, out_channels=64),
    # Anchors 8..128 px: the synthetic things are 6-60 px tall at this resolution.
    rpn=dict(pre_nms_top_n_train=1000, pre_nms_top_n_test=500, post_nms_top_n_train=256,
             post_nms_top_n_test=200, batch_size_per_image=128,
             anchor_sizes=(8, 16, 32, 64, 128)),
    roi_head=dict(batch_size_per_image=64, representation_size=256, mask_channels=64,
                  mask_convs=2),
    semantic_head=dict(inner_channels=64, num_groups=16),
    # 4096 px is 1.3 % of a 640x480 COCO image; 160 px is that share of a 128x96 synthetic one.
    # score_thr 0.3 instead of 0.6: a detector trained for minutes is rarely that confident.
    test_cfg=dict(score_thr=0.3, max_per_img=30, stuff_area_limit=160),
)
# Half the R50 learning rate: the ResNet-18 trains from scratch without normalisation layers
# (FrozenBatchNorm), and 0.02 makes it unstable.
optimizer = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001)
optimizer_config = dict(grad_clip=dict(max_norm=35, norm_type=2))
lr_config = dict(policy='step', step=[9, 11], warmup='linear', warmup_iters=100, warmup_ratio=1 / 3)
# 12 epochs on 400 images: ~18 minutes on one CPU thread, PQ ~55 (benchmarks/BENCHMARKS.md).
runner = dict(max_epochs=12)
evaluation = dict(interval=4, metric=['PQ'], save_best='PQ')
log_config = dict(interval=20)
