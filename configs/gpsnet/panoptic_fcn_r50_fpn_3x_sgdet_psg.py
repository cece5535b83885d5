# GPSNet on a frozen PanopticFCN R50 (3x), SGDet, PSG: the Panoptic FPN twin
# (panoptic_fpn_r50_fpn_1x_sgdet_psg.py) with the segmenter entry swapped.
#   python tools/train.py configs/panoptic_fcn/panoptic_fcn_r50_fpn_3x_psg.py   # the segmenter
#   python tools/train.py configs/gpsnet/panoptic_fcn_r50_fpn_3x_sgdet_psg.py
from openpsg.config import read_config

_base_ = ['./panoptic_fpn_r50_fpn_1x_sgdet_psg.py']
model = dict(
    segmenter=dict(
        _delete_=True, **read_config('../_base_/models/panoptic_fcn_r50_fpn_psg.py').model),
    segmenter_checkpoint='work_dirs/panoptic_fcn_r50_fpn_3x_psg/latest.pth',
)
work_dir = 'work_dirs/gpsnet_panoptic_fcn_r50_fpn_3x_sgdet_psg'
