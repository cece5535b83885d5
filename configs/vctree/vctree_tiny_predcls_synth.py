# VCTree, PredCls, on the synthetic PSG set, sized for a CPU
# (see configs/motifs/motifs_tiny_predcls_synth.py).
_base_ = [
    '../_base_/datasets/psg_synth.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_sg_12e.py',
    '../_base_/models/two_stage_psg.py',
    '../_base_/models/two_stage_tiny_synth.py',
]

model = dict(relation_head=dict(type='VCTreeHead', hidden_dim=128, pooling_dim=512, pos_dim=64))
work_dir = 'work_dirs/vctree_tiny_predcls_synth'
