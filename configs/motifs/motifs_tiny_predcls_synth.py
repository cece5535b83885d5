# MOTIFS, PredCls, on the synthetic PSG set, sized for a CPU (see
# configs/_base_/models/two_stage_tiny_synth.py); the other *_synth.py two-stage configs change the
# head or the mode.
#   python tools/make_synth_psg.py --out data/psg_synth --num-train 900 --num-test 100
#   python tools/train.py configs/panoptic_fpn/panoptic_fpn_tiny_synth.py
#   python tools/train.py configs/motifs/motifs_tiny_predcls_synth.py
#   python tools/test.py configs/motifs/motifs_tiny_predcls_synth.py \
#       work_dirs/motifs_tiny_predcls_synth/latest.pth --eval predcls
_base_ = [
    '../_base_/datasets/psg_synth.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_sg_12e.py',
    '../_base_/models/two_stage_psg.py',
    '../_base_/models/two_stage_tiny_synth.py',
]

model = dict(relation_head=dict(type='MotifHead', hidden_dim=128, pooling_dim=512, pos_dim=64))
work_dir = 'work_dirs/motifs_tiny_predcls_synth'
