# mmdet's 3x schedule: 36 epochs, SGD, lr x0.1 after epochs 27 and 33, 1000 warm-up iterations.
optimizer = dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.0001)
optimizer_config = dict(grad_clip=None)
lr_config = dict(policy='step', step=[27, 33],
                 warmup='linear', warmup_iters=1000, warmup_ratio=0.001)
runner = dict(max_epochs=36)
