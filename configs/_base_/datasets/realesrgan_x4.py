# On-the-fly x4 training pairs with the Real-ESRGAN second-order degradation (Wang et al., ICCVW 2021),
# the LQ synthesis ITER's paper trains on, built from MMagic's own random degradations.
# The degradations read the sample's `scale` (SetValues below): realesrgan_x2.py reuses them and sets scale 2.
#
# Real-ESRGAN settings (train_realesrgan_x4plus): blur {iso .45, aniso .25, gen-iso .12, gen-aniso .03,
# plateau-iso .12, plateau-aniso .03} x 0.9 + sinc 0.1, sizes 7..21, sigma [0.2, 3] / [0.2, 1.5];
# resize (up, down, keep) [0.2, 0.7, 0.1] in [0.15, 1.5], then [0.3, 0.4, 0.3] in [0.3, 1.2] of GT/scale;
# Gaussian (p 0.5) sigma [1, 30] / [1, 25] or Poisson scale [0.05, 3] / [0.05, 2.5], grey p 0.4;
# JPEG [30, 95] twice; second blur p 0.8; final [resize to GT/scale + sinc (p 0.8)] and JPEG in random order.
# The LQ is made from the unsharp-masked GT (as Real-ESRGAN does); `gt` stays the plain HQ patch,
# `gt_unsharp` (Real-ESRGAN's sharpened target) is packed as well.
scale = 4
gt_crop = 256  # GT patch size (LQ patch = gt_crop // scale)
data_root = 'data/df2k_ost/HQ'  # folder of HQ training images (e.g. DIV2K + Flickr2K + OST, 256 patches)
val_data_root = 'data/DIV2K/DIV2K_valid_HR'  # HQ validation images, degraded with a fixed seed per image
val_seed = 0

_kernels = ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso', 'sinc']
_kernel_prob = [0.405, 0.225, 0.108, 0.027, 0.108, 0.027, 0.1]
_kernel_size = [7, 9, 11, 13, 15, 17, 19, 21]
_interp = dict(resize_opt=['bilinear', 'area', 'bicubic'], resize_prob=[1 / 3, 1 / 3, 1 / 3])
# MMagic's Poisson noise works on [0, 255] values, Real-ESRGAN's on [0, 1]: at equal `scale` MMagic's
# noise std is sqrt(255) times smaller, so Real-ESRGAN's ranges are multiplied by sqrt(255).
_poisson = 255**0.5

realesrgan_degradations = [
    dict(type='UnsharpMasking', keys=['gt'], kernel_size=51, sigma=0, weight=0.5, threshold=10),
    dict(type='CopyValues', src_keys=['gt_unsharp'], dst_keys=['img']),
    # first order
    dict(
        type='RandomBlur',
        keys=['img'],
        params=dict(
            kernel_size=_kernel_size,
            kernel_list=_kernels,
            kernel_prob=_kernel_prob,
            sigma_x=[0.2, 3],
            sigma_y=[0.2, 3],
            rotate_angle=[-3.1416, 3.1416],
            beta_gaussian=[0.5, 4],
            beta_plateau=[1, 2],
        ),
    ),
    dict(
        type='RandomResize',
        keys=['img'],
        params=dict(resize_mode_prob=[0.2, 0.7, 0.1], resize_scale=[0.15, 1.5], **_interp),
    ),
    dict(
        type='RandomNoise',
        keys=['img'],
        params=dict(
            noise_type=['gaussian', 'poisson'],
            noise_prob=[0.5, 0.5],
            gaussian_sigma=[1, 30],
            gaussian_gray_noise_prob=0.4,
            poisson_scale=[0.05 * _poisson, 3 * _poisson],
            poisson_gray_noise_prob=0.4,
        ),
    ),
    dict(type='Clip', keys=['img']),
    dict(type='RandomJPEGCompression', keys=['img'], params=dict(quality=[30, 95]), bgr2rgb=True),
    # second order
    dict(
        type='RandomBlur',
        keys=['img'],
        params=dict(
            prob=0.8,
            kernel_size=_kernel_size,
            kernel_list=_kernels,
            kernel_prob=_kernel_prob,
            sigma_x=[0.2, 1.5],
            sigma_y=[0.2, 1.5],
            rotate_angle=[-3.1416, 3.1416],
            beta_gaussian=[0.5, 4],
            beta_plateau=[1, 2],
        ),
    ),
    dict(
        type='RelativeRandomResize',
        keys=['img'],
        params=dict(ref_key='gt', resize_mode_prob=[0.3, 0.4, 0.3], resize_scale=[0.3, 1.2], **_interp),
    ),
    dict(
        type='RandomNoise',
        keys=['img'],
        params=dict(
            noise_type=['gaussian', 'poisson'],
            noise_prob=[0.5, 0.5],
            gaussian_sigma=[1, 25],
            gaussian_gray_noise_prob=0.4,
            poisson_scale=[0.05 * _poisson, 2.5 * _poisson],
            poisson_gray_noise_prob=0.4,
        ),
    ),
    dict(type='Clip', keys=['img']),
    dict(
        type='RandomOrderDegradations',
        keys=['img'],
        degradations=[
            dict(type='RandomJPEGCompression', params=dict(quality=[30, 95]), bgr2rgb=True),
            [
                dict(type='RelativeRandomResize', params=dict(ref_key='gt', **_interp)),
                dict(
                    type='RandomBlur',
                    params=dict(
                        prob=0.8,
                        kernel_size=_kernel_size,
                        kernel_list=['sinc'],
                        kernel_prob=[1],
                        omega=[3.1416 / 3, 3.1416],
                    ),
                ),
            ],
        ],
    ),
    dict(type='Clip', keys=['img']),
]

# The LQ `img` is made from the RGB GT but carries no channel order of its own; without one MMagic's preprocessor
# takes it for BGR, and val/test metrics then score a red/blue-swapped prediction. Record it before packing.
rgb_lq = dict(type='SetValues', dictionary=dict(img_channel_order='rgb'))

train_pipeline = [
    dict(type='LoadImageFromFile', key='gt', channel_order='rgb'),
    dict(type='SetValues', dictionary=dict(scale=scale)),
    # images smaller than the crop are zero-padded (as in stage I) so batches stay stackable
    dict(type='Crop', keys=['gt'], crop_size=(gt_crop, gt_crop), random_crop=True, is_pad_zeros=True),
    dict(type='Flip', keys=['gt'], flip_ratio=0.5, direction='horizontal'),
    dict(type='Flip', keys=['gt'], flip_ratio=0.5, direction='vertical'),
    dict(type='RandomTransposeHW', keys=['gt'], transpose_ratio=0.5),
    *realesrgan_degradations,
    rgb_lq,
    dict(type='PackInputs'),
]

# validation: whole HQ images (mod-cropped to the scale), degraded with a seed per file name
val_pipeline = [
    dict(type='LoadImageFromFile', key='gt', channel_order='rgb'),
    dict(type='SetValues', dictionary=dict(scale=scale)),
    dict(type='ModCrop', key='gt'),
    dict(type='SeededDegradations', seed=val_seed, key='gt_path', transforms=realesrgan_degradations),
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
        metainfo=dict(dataset_type='realesrgan_synthetic', task_name='real_sr'),
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
        metainfo=dict(dataset_type='realesrgan_synthetic_val', task_name='real_sr'),
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
