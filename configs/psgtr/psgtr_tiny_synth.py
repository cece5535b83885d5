# CPU-sized PSGTR on the synthetic PSG set: the trained tiny Panoptic FPN's ResNet-18 (frozen), a
# 64-d transformer with 2+2 layers on C4, 30 triplet queries, images of 128-160 px (see
# configs/_base_/models/one_stage_tiny_synth.py).
#   python tools/make_synth_psg.py --out data/psg_synth --num-train 400 --num-test 100
#   python tools/train.py configs/panoptic_fpn/panoptic_fpn_tiny_synth.py
#   python tools/train.py configs/psgtr/psgtr_tiny_synth.py
_base_ = [
    '../_base_/models/psgtr_r50.py',
    '../_base_/datasets/psg_synth_onestage.py',
    '../_base_/default_runtime.py',
    '../_base_/models/one_stage_tiny_synth.py',
]
# 15 epochs: ~10 minutes on one CPU thread (400 images)
lr_config = dict(step=[12])
runner = dict(max_epochs=15)
work_dir = './work_dirs/psgtr_tiny_synth'
