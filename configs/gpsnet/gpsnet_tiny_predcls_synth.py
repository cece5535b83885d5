# GPSNet, PredCls, on the synthetic PSG set, sized for a CPU
# (see configs/motifs/motifs_tiny_predcls_synth.py).
_base_ = ['../motifs/motifs_tiny_predcls_synth.py']
model = dict(relation_head=dict(type='GPSHead'))
work_dir = 'work_dirs/gpsnet_tiny_predcls_synth'
