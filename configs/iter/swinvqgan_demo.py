# Small-budget demo, stage I: a small Swin-VQGAN learns its codebook from the colour images that ship with
# scikit-image (SkimagePhotoDataset, split 'train_colour'), validated on held-out photos (split 'heldout'). Sized for
# ~6 minutes on 2 CPU cores with OMP_NUM_THREADS=1; stages II+III follow with configs/iter/iter_x4_demo.py.
#   OMP_NUM_THREADS=1 python tools/train.py configs/iter/swinvqgan_demo.py
#
# What makes it learn where swinvqgan_tiny.py collapses (README, "Small-budget demo: what it learns"): codebook
# initialised from encoder outputs and dead codes restarted (codebook_maintenance), one GroupNorm group (32 groups
# on 32-64 channels is instance normalisation, which erases colour), a lighter VQ pull (vq_loss_weight),
# learning-rate warm-up and cosine decay, colour training images (a codebook only holds the colours it has seen),
# and no GAN term: at this budget it cost 4 dB of reconstruction PSNR when it ramped in. The paper configs keep
# the authors' training (all these options off).
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/hq_only.py']

experiment_name = 'swinvqgan_demo'
work_dir = f'./work_dirs/{experiment_name}'
gt_crop_size = 64
codebook_size = 512
max_iters = 800

# Must equal the VQGAN of configs/iter/iter_x4_demo.py (tests/test_demo.py checks it).
demo_vqgan = dict(
    type='SwinVQGAN',
    nf=32,
    ch_mult=(1, 2, 2, 2),
    num_res_blocks=1,
    codebook_size=codebook_size,
    embed_dim=32,
    swin_dim=32,
    swin_window=4,
    swin_depth=2,
    swin_num_rstb=1,
    swin_heads=4,
    norm_groups=1,
)

model = dict(
    type='SwinVQGANModel',
    generator=demo_vqgan,
    discriminator=None,  # no GAN term at this budget (see the header)
    gan_loss=None,
    pixel_loss=dict(type='L1Loss', loss_weight=1.0, reduction='mean'),
    ssim_loss=dict(type='SSIMLoss', loss_weight=1.0),
    perceptual_loss=None,  # LPIPS off: nothing needs pretrained weights
    # The legacy VQ loss pulls the encoder onto the codes with weight 1 (docs/faithfulness.md#quantizer-and-vq-loss);
    # at this budget that pull
    # wins over the reconstruction gradient and the latents collapse onto a few codes: 0.25 keeps them spread.
    vq_loss_weight=0.25,
    codebook_maintenance=dict(
        init='kmeans',
        init_iter=0,
        kmeans_iters=10,
        restart_interval=25,
        restart_min_count=1,
        restart_until=0.8,
        restart_noise=0.01,
        seed=0,
    ),
    train_cfg=dict(),
    test_cfg=dict(),
    data_preprocessor=dict(type='DataPreprocessor', mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0]),
)

train_pipeline = [
    dict(type='LoadImageFromFile', key='gt', color_type='color', channel_order='rgb'),
    dict(type='Crop', keys=['gt'], crop_size=(gt_crop_size, gt_crop_size), random_crop=True, is_pad_zeros=True),
    dict(type='Flip', keys=['gt'], flip_ratio=0.5, direction='horizontal'),
    dict(type='Flip', keys=['gt'], flip_ratio=0.5, direction='vertical'),
    dict(type='RandomTransposeHW', keys=['gt'], transpose_ratio=0.5),
    dict(type='CopyValues', src_keys=['gt', 'gt_channel_order'], dst_keys=['img', 'img_channel_order']),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    num_workers=0,
    batch_size=4,
    dataset=dict(_delete_=True, type='SkimagePhotoDataset', split='train_colour', pipeline=train_pipeline),
)
val_dataloader = dict(
    num_workers=0,
    dataset=dict(
        _delete_=True, type='SkimagePhotoDataset', split='heldout', test_mode=True, pipeline=_base_.val_pipeline
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(
    type='Evaluator',
    metrics=[
        dict(type='PSNR', crop_border=4, convert_to='Y'),
        dict(type='SSIM', crop_border=4, convert_to='Y'),
        dict(type='CodebookUsage', codebook_size=codebook_size),
    ],
)
test_evaluator = val_evaluator

train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters // 3)
auto_scale_lr = dict(enable=False, base_batch_size=4)  # --auto-scale-lr: LRs set for one process x batch 4
optim_wrapper = dict(
    constructor='MultiOptimWrapperConstructor',
    generator=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-3, betas=(0.9, 0.99), fused=True)),
)
# MMEngine's schedulers: linear warm-up over the first 100 iterations, then cosine decay to 5% (a short run ends
# on settled weights instead of the oscillations of a constant 1e-3)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, end_factor=1.0, begin=0, end=100, by_epoch=False),
    dict(type='CosineAnnealingLR', eta_min_ratio=0.05, begin=100, end=max_iters, T_max=max_iters - 100, by_epoch=False),
]

default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=max_iters // 3))
custom_hooks = []
log_processor = dict(window_size=20)
