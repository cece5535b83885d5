# IMP on a frozen Panoptic FPN R50, SGDet (the segmenter's panoptic segments), PSG.
_base_ = ['./panoptic_fpn_r50_fpn_1x_predcls_psg.py']
model = dict(use_gt_box=False, use_gt_label=False)
evaluation = dict(metric=['sgdet'])
work_dir = 'work_dirs/imp_panoptic_fpn_r50_fpn_1x_sgdet_psg'
