# OpenPSG's one-stage schedule (PSGTR/PSGFormer): AdamW lr 1e-4, backbone lr x0.1, clip 0.1,
# lr x0.1 after epoch 40, 60 epochs, no warm-up.
optimizer = dict(type='AdamW', lr=0.0001, weight_decay=0.0001,
                 paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1, decay_mult=1.0)}))
optimizer_config = dict(grad_clip=dict(max_norm=0.1, norm_type=2))
lr_config = dict(policy='step', step=[40])
runner = dict(max_epochs=60)
