# OpenPSG's two-stage scene-graph schedule (IMP/MOTIFS/VCTree/GPSNet): SGD lr 0.03, clip 35,
# warm-up 500 iterations at 1/3, lr x0.1 after epochs 7 and 10, 12 epochs.
optimizer = dict(type='SGD', lr=0.03, momentum=0.9, weight_decay=0.0001)
optimizer_config = dict(grad_clip=dict(max_norm=35, norm_type=2))
lr_config = dict(policy='step', step=[7, 10], warmup='linear', warmup_iters=500, warmup_ratio=1 / 3)
runner = dict(max_epochs=12)
