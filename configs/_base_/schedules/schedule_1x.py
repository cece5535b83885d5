# mmdet's 1x schedule: 12 epochs, SGD, lr x0.1 after epochs 8 and 11, 500 warm-up iterations.
optimizer = dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001)
optimizer_config = dict(grad_clip=None)
lr_config = dict(policy='step', step=[8, 11], warmup='linear', warmup_iters=500, warmup_ratio=0.001)
runner = dict(max_epochs=12)
