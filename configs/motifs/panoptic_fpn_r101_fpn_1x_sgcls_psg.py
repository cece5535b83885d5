# MOTIFS on a frozen Panoptic FPN R101, SGCls, PSG.
_base_ = ['./panoptic_fpn_r50_fpn_1x_sgcls_psg.py']
model = dict(segmenter=dict(backbone=dict(depth=101)),
             segmenter_checkpoint='work_dirs/panoptic_fpn_r101_fpn_1x_psg/latest.pth')
work_dir = 'work_dirs/motifs_panoptic_fpn_r101_fpn_1x_sgcls_psg'
