# IMP on a frozen Panoptic FPN R101, PredCls, PSG.
_base_ = ['./panoptic_fpn_r50_fpn_1x_predcls_psg.py']
model = dict(segmenter=dict(backbone=dict(depth=101)),
             segmenter_checkpoint='work_dirs/panoptic_fpn_r101_fpn_1x_psg/latest.pth')
work_dir = 'work_dirs/imp_panoptic_fpn_r101_fpn_1x_predcls_psg'
