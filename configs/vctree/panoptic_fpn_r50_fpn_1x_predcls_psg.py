# VCTree on a frozen Panoptic FPN R50, PredCls (ground-truth segments and labels), PSG.
_base_ = ['../motifs/panoptic_fpn_r50_fpn_1x_predcls_psg.py']
model = dict(relation_head=dict(type='VCTreeHead'))
work_dir = 'work_dirs/vctree_panoptic_fpn_r50_fpn_1x_predcls_psg'
