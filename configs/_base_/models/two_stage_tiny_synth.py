# CPU sizing shared by the two-stage heads on the synthetic PSG set (IMP, MOTIFS, VCTree, GPSNet);
# list it after two_stage_psg.py, whose `model` it overrides. The first stage is the tiny Panoptic
# FPN of configs/panoptic_fpn/panoptic_fpn_tiny_synth.py, trained first and frozen here; each
# head's *_tiny_predcls_synth.py config sets the head's type and sizes its own options.
from openpsg.config import read_config

model = dict(
    segmenter=read_config('../../panoptic_fpn/panoptic_fpn_tiny_synth.py').model,
    segmenter_checkpoint='work_dirs/panoptic_fpn_tiny_synth/latest.pth',
    relation_head=dict(roi_dim=256, sampler=dict(num_rel_per_image=128)),
)
# The published lr 0.03 is for 16 images per step; scaled linearly to the 4 per step here (at 0.03
# MOTIFS diverges and GPSNet stalls on the synthetic set).
optimizer = dict(lr=0.0075)
lr_config = dict(step=[4, 5], warmup_iters=50)
runner = dict(max_epochs=6)
evaluation = dict(save_best='predcls/openpsg/R@20')
log_config = dict(interval=20)
