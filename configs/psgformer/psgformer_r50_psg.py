# PSGFormer R50 on PSG: OpenPSG's recipe (AdamW 1e-3 with x0.1 on every DETR-pretrained part,
# wd 1e-4, clip 0.1, 60 epochs, lr x0.1 after epoch 40, batch 1 per GPU), initialised from
# COCO-panoptic DETR (its names fit the object branch, no renaming needed):
#   python tools/convert_detr_checkpoint.py detr-r50-panoptic-00ce5173.pth work_dirs/checkpoints/detr_pan_r50.pth \
#       --config configs/psgformer/psgformer_r50_psg.py
#   torchrun --nproc_per_node=8 tools/train.py configs/psgformer/psgformer_r50_psg.py --launcher pytorch
# OpenPSG's published numbers: test with --cfg-options model.output=legacy (README, 'PSGTR and
# PSGFormer').
_base_ = [
    '../_base_/models/psgformer_r50.py',
    '../_base_/datasets/psg_onestage.py',
    '../_base_/schedules/schedule_detr_60e.py',
    '../_base_/default_runtime.py',
]
# OpenPSG's transformer.decoder1 / obj_query_embed / box_embed are transformer.decoder /
# query_embed / bbox_embed here; the relation decoder, queries, heads and pointers get lr 1e-3.
_pretrained = dict(lr_mult=0.1, decay_mult=1.0)
optimizer = dict(
    lr=0.001,
    paramwise_cfg=dict(custom_keys={
        'backbone': _pretrained,
        'transformer.encoder': _pretrained,
        'transformer.decoder': _pretrained,
        'query_embed': _pretrained,
        'input_proj': _pretrained,
        'class_embed': _pretrained,
        'bbox_embed': _pretrained,
        'bbox_attention': _pretrained,
        'mask_head': _pretrained,
    }))
find_unused_parameters = True
checkpoint_config = dict(interval=1, max_keep_ckpts=15)
evaluation = dict(interval=1, metric=['sgdet', 'PQ'], save_best='sgdet/openpsg/R@20')
load_from = 'work_dirs/checkpoints/detr_pan_r50.pth'
work_dir = './work_dirs/psgformer_r50_psg'
