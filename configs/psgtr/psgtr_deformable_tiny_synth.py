# CPU-sized PSGTR on Deformable DETR's transformer on the synthetic PSG set: psgtr_tiny_synth.py
# (frozen ResNet-18 of the tiny Panoptic FPN, 30 triplet queries, 15 epochs) with the transformer of
# configs/_base_/models/one_stage_deformable_tiny_synth.py.
#   python tools/make_synth_psg.py --out data/psg_synth --num-train 400 --num-test 100
#   python tools/train.py configs/panoptic_fpn/panoptic_fpn_tiny_synth.py
#   python tools/train.py configs/psgtr/psgtr_deformable_tiny_synth.py
_base_ = [
    './psgtr_tiny_synth.py',
    '../_base_/models/one_stage_deformable_tiny_synth.py',
]
work_dir = './work_dirs/psgtr_deformable_tiny_synth'
