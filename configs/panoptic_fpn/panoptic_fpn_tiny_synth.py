# Panoptic FPN on the synthetic PSG set, sized for a CPU: ResNet-18 from scratch, fewer RPN
# proposals and RoI samples, and the stuff area limit scaled to the 128-px images.
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
    backbone=dict(depth=18, pretrained=False, trainable_layers=5),
    rpn=dict(pre_nms_top_n_train=1000, pre_nms_top_n_test=500, post_nms_top_n_train=256,
             post_nms_top_n_test=200, batch_size_per_image=128),
    roi_head=dict(batch_size_per_image=64),
    # 4096 px is 1.3 % of a 640x480 COCO image; 160 px is that share of a 128x96 synthetic one.
    test_cfg=dict(max_per_img=30, stuff_area_limit=160),
)
# Half the R50 learning rate: the ResNet-18 trains from scratch without normalisation layers
# (FrozenBatchNorm), and 0.02 makes it unstable.
optimizer = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001)
optimizer_config = dict(grad_clip=dict(max_norm=35, norm_type=2))
lr_config = dict(policy='step', step=[3], warmup='linear', warmup_iters=100, warmup_ratio=1 / 3)
runner = dict(type='EpochBasedRunner', max_epochs=4)
evaluation = dict(interval=2, metric=['PQ'], save_best='PQ')
log_config = dict(interval=20)
