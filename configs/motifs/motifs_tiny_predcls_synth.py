# MOTIFS, PredCls, on the synthetic PSG set, sized for a CPU. The first stage is the tiny
# Panoptic FPN of configs/panoptic_fpn/panoptic_fpn_tiny_synth.py, trained first and frozen here;
# the other *_synth.py two-stage configs change the head or the mode.
#   python tools/make_synth_psg.py --out data/psg_synth --num-train 900 --num-test 100
#   python tools/train.py configs/panoptic_fpn/panoptic_fpn_tiny_synth.py
#   python tools/train.py configs/motifs/motifs_tiny_predcls_synth.py
#   python tools/test.py configs/motifs/motifs_tiny_predcls_synth.py \
#       work_dirs/motifs_tiny_predcls_synth/latest.pth --eval predcls
_base_ = [
    '../panoptic_fpn/panoptic_fpn_tiny_synth.py',
    '../_base_/schedules/schedule_sg_12e.py',
    '../_base_/models/two_stage_psg.py',
]

model = dict(
    segmenter_checkpoint='work_dirs/panoptic_fpn_tiny_synth/latest.pth',
    relation_head=dict(in_channels=64, roi_dim=256, hidden_dim=128, pooling_dim=512, pos_dim=64,
                       sampler=dict(num_rel_per_image=128)),
)
# The published lr 0.03 is for 16 images per step; scaled linearly to the 4 per step here (at 0.03
# MOTIFS diverges and GPSNet stalls on the synthetic set).
optimizer = dict(lr=0.0075)
lr_config = dict(step=[4, 5], warmup_iters=50)
runner = dict(max_epochs=6)
evaluation = dict(save_best='predcls/openpsg/R@20')
log_config = dict(interval=20)
work_dir = 'work_dirs/motifs_tiny_predcls_synth'
