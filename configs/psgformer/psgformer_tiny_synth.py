# CPU-sized PSGFormer on the synthetic PSG set: the trained tiny Panoptic FPN's ResNet-18
# (frozen), a 64-d transformer with 2 encoder + 2 object-decoder + 2 relation-decoder layers on
# C4, 30 + 30 queries, images of 128-160 px (see configs/_base_/models/one_stage_tiny_synth.py).
#   python tools/make_synth_psg.py --out data/psg_synth --num-train 400 --num-test 100
#   python tools/train.py configs/panoptic_fpn/panoptic_fpn_tiny_synth.py
#   python tools/train.py configs/psgformer/psgformer_tiny_synth.py
_base_ = [
    '../_base_/models/psgformer_r50.py',
    '../_base_/datasets/psg_synth_onestage.py',
    '../_base_/default_runtime.py',
    '../_base_/models/one_stage_tiny_synth.py',
]
model = dict(num_rel_queries=30)
find_unused_parameters = True
work_dir = './work_dirs/psgformer_tiny_synth'
