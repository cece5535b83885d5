# GPSNet, SGDet, on the synthetic PSG set: the objects are the tiny segmenter's panoptic segments.
_base_ = ['./gpsnet_tiny_predcls_synth.py']
model = dict(use_gt_box=False, use_gt_label=False)
evaluation = dict(metric=['sgdet'], save_best='sgdet/openpsg/R@20')
work_dir = 'work_dirs/gpsnet_tiny_sgdet_synth'
