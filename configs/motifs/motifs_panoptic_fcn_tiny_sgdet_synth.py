# MOTIFS, SGDet, on the synthetic PSG set, on the tiny PanopticFCN: motifs_tiny_sgdet_synth.py with
# the segmenter entry swapped (train configs/panoptic_fcn/panoptic_fcn_tiny_synth.py first).
from openpsg.config import read_config

_base_ = ['./motifs_tiny_sgdet_synth.py']
model = dict(
    segmenter=dict(
        _delete_=True, **read_config('../panoptic_fcn/panoptic_fcn_tiny_synth.py').model),
    segmenter_checkpoint='work_dirs/panoptic_fcn_tiny_synth/latest.pth',
)
work_dir = 'work_dirs/motifs_panoptic_fcn_tiny_sgdet_synth'
