# IMP on a frozen Panoptic FPN R50, SGCls (ground-truth segments, the head classifies them), PSG.
_base_ = ['./panoptic_fpn_r50_fpn_1x_predcls_psg.py']
model = dict(use_gt_label=False)
evaluation = dict(metric=['sgcls'])
work_dir = 'work_dirs/imp_panoptic_fpn_r50_fpn_1x_sgcls_psg'
