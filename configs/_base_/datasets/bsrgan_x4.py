# On-the-fly x4 training pairs with the BSRGAN degradation (Zhang et al., ICCV 2021), "light" variant of the
# ITER repository (docs/faithfulness.md#data): pre-downsampling (p 0.25), then blur x2 / downsample-2 / downsample-3 /
# Gaussian noise 2..8 / JPEG 80..95 (p 0.9) in random order, final JPEG 80..95. For the paper's full-strength
# BSRGAN set blur_width_factor=1.0, noise_level=(2, 25), jpeg_quality=(30, 95), final_jpeg_quality=(30, 95).
scale = 4
gt_crop = 256  # GT patch size (LQ patch = gt_crop // scale)
data_root = 'data/df2k_ost/HQ'  # folder of HQ training images
val_data_root = 'data/DIV2K/DIV2K_valid_HR'  # HQ validation images, degraded with a fixed seed per image
val_seed = 0

bsrgan_degradations = [
    dict(type='CopyValues', src_keys=['gt'], dst_keys=['img']),
    dict(
        type='BSRGANDegradation',
        keys=['img'],
        scale=scale,
        pre_down_prob=0.25,
        blur_width_factor=0.25,
        noise_level=(2, 8),
        jpeg_prob=0.9,
        jpeg_quality=(80, 95),
        final_jpeg_quality=(80, 95),
    ),
]

# The LQ `img` is made from the RGB GT: record its channel order for MMagic's preprocessor (as realesrgan_x4.py).
rgb_lq = dict(type='SetValues', dictionary=dict(img_channel_order='rgb'))

train_pipeline = [
    dict(type='LoadImageFromFile', key='gt', channel_order='rgb'),
    dict(type='SetValues', dictionary=dict(scale=scale)),
    dict(type='Crop', keys=['gt'], crop_size=(gt_crop, gt_crop), random_crop=True, is_pad_zeros=True),  # small: padded
    dict(type='Flip', keys=['gt'], flip_ratio=0.5, direction='horizontal'),
    dict(type='Flip', keys=['gt'], flip_ratio=0.5, direction='vertical'),
    dict(type='RandomTransposeHW', keys=['gt'], transpose_ratio=0.5),
    *bsrgan_degradations,
    rgb_lq,
    dict(type='PackInputs'),
]

val_pipeline = [
    dict(type='LoadImageFromFile', key='gt', channel_order='rgb'),
    dict(type='SetValues', dictionary=dict(scale=scale)),
    dict(type='ModCrop', key='gt'),
    dict(type='SeededDegradations', seed=val_seed, key='gt_path', transforms=bsrgan_degradations),
    rgb_lq,
    dict(type='PackInputs'),
]

train_dataloader = dict(
    num_workers=4,
    batch_size=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='CheckedImageDataset',
        metainfo=dict(dataset_type='bsrgan_synthetic', task_name='real_sr'),
        data_root=data_root,
        data_prefix=dict(gt=''),
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
        metainfo=dict(dataset_type='bsrgan_synthetic_val', task_name='real_sr'),
        data_root=val_data_root,
        data_prefix=dict(gt=''),
        pipeline=val_pipeline,
        test_mode=True,
    ),
)
val_evaluator = dict(type='Evaluator', metrics=[dict(type='PSNR'), dict(type='SSIM')])
val_cfg = dict(type='MultiValLoop')
# test pieces: configs/_base_/datasets/realworld_lq_niqe.py (combinable with this file), or
# test_dataloader = val_dataloader, test_evaluator = val_evaluator, test_cfg = dict(type='MultiTestLoop').
