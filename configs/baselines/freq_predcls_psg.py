# Frequency baseline (PredCls) on PSG: one learned predicate distribution per (subject class,
# object class) pair. Needs data/coco and data/psg/psg.json (see configs/_base_/datasets/psg.py).
_base_ = [
    '../_base_/datasets/psg.py',
    '../_base_/schedules/schedule_1x.py',
    '../_base_/default_runtime.py',
]

model = dict(type='FrequencyBaseline', num_classes=133, num_predicates=56, neg_per_image=64)
data = dict(samples_per_gpu=8, workers_per_gpu=4)
optimizer = dict(_delete_=True, type='AdamW', lr=0.1, weight_decay=0.0)
lr_config = dict(_delete_=True, policy='cosine', min_lr_ratio=0.01,
                 warmup='linear', warmup_iters=200, warmup_ratio=0.1)
runner = dict(max_epochs=2)
evaluation = dict(interval=1, metric=['predcls'], save_best='predcls/openpsg/R@20')
