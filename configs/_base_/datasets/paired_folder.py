# Pre-generated GT/LQ pairs (e.g. by tools/generate_lq.py): data_root/gt/NAME and data_root/lq/NAME, paired by
# file name. Training: aligned random crop gt_crop (LQ gt_crop // scale), flips and 90-degree rotation.
#   python tools/generate_lq.py HQ_DIR data/paired_x4 --degradation realesrgan --scale 4
scale = 4
gt_crop = 256
data_root = 'data/paired_x4'  # training pairs
val_data_root = 'data/paired_x4_val'  # validation / test pairs (same layout)
gt_folder, lq_folder = 'gt', 'lq'

train_pipeline = [
    dict(type='LoadImageFromFile', key='img', channel_order='rgb'),
    dict(type='LoadImageFromFile', key='gt', channel_order='rgb'),
    dict(type='SetValues', dictionary=dict(scale=scale)),
    dict(type='PairedRandomCrop', gt_patch_size=gt_crop),
    dict(type='Flip', keys=['img', 'gt'], flip_ratio=0.5, direction='horizontal'),
    dict(type='Flip', keys=['img', 'gt'], flip_ratio=0.5, direction='vertical'),
    dict(type='RandomTransposeHW', keys=['img', 'gt'], transpose_ratio=0.5),
    dict(type='PackInputs'),
]

val_pipeline = [
    dict(type='LoadImageFromFile', key='img', channel_order='rgb'),
    dict(type='LoadImageFromFile', key='gt', channel_order='rgb'),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    num_workers=4,
    batch_size=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='CheckedImageDataset',
        metainfo=dict(dataset_type='paired_folder', task_name='real_sr'),
        data_root=data_root,
        data_prefix=dict(gt=gt_folder, img=lq_folder),
        pipeline=train_pipeline,
    ),
)

val_dataloader = dict(
    num_workers=2,
    batch_size=1,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CheckedImageDataset',
        metainfo=dict(dataset_type='paired_folder_val', task_name='real_sr'),
        data_root=val_data_root,
        data_prefix=dict(gt=gt_folder, img=lq_folder),
        pipeline=val_pipeline,
        test_mode=True,
    ),
)
val_evaluator = dict(type='Evaluator', metrics=[dict(type='PSNR'), dict(type='SSIM')])
val_cfg = dict(type='MultiValLoop')
# test pieces: configs/_base_/datasets/realworld_lq_niqe.py (combinable with this file), or
# test_dataloader = val_dataloader, test_evaluator = val_evaluator, test_cfg = dict(type='MultiTestLoop').
