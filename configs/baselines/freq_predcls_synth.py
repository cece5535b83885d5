# Frequency baseline (PredCls) on the synthetic PSG set: one learned predicate distribution per
# (subject class, object class) pair, trained in seconds on a CPU.
#   python tools/make_synth_psg.py --out data/psg_synth --num-train 900 --num-test 100
#   python tools/train.py configs/baselines/freq_predcls_synth.py
_base_ = [
    '../_base_/datasets/psg_synth.py',
    '../_base_/schedules/schedule_1x.py',
    '../_base_/default_runtime.py',
]

model = dict(type='FrequencyBaseline', num_classes=133, num_predicates=56, neg_per_image=64)
optimizer = dict(_delete_=True, type='AdamW', lr=0.1, weight_decay=0.0)
lr_config = dict(_delete_=True, policy='cosine', min_lr_ratio=0.01,
                 warmup='linear', warmup_iters=20, warmup_ratio=0.1)
runner = dict(max_epochs=4)
log_config = dict(interval=20)
evaluation = dict(interval=1, metric=['predcls'], save_best='predcls/openpsg/R@20')
