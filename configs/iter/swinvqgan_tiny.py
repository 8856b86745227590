# Tiny stage-I config: a shrunk Swin-VQGAN trained on a small HQ folder in a few minutes on CPU (a smoke test:
# it trains with the authors' recipe and collapses to a few codes; configs/iter/swinvqgan_demo.py is the one that
# learns). Data: the photos that ship with scikit-image (SkimagePhotoDataset: train split, held-out validation).
#   python tools/train.py configs/iter/swinvqgan_tiny.py
#   python tools/train.py configs/iter/swinvqgan_tiny.py --cfg-options \
#       train_dataloader.dataset.data_root=DIR val_dataloader.dataset.data_root=DIR
# (with a data_root of your own every image of the folder is used; `data_root` below is the default of both; a
#  top-level `--cfg-options data_root=...` alone does not reach the dataloaders, which MMEngine builds from the
#  value at parse time.)
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/hq_only.py']

experiment_name = 'swinvqgan_tiny'
work_dir = f'./work_dirs/{experiment_name}'
data_root = None  # None = scikit-image's data folder (SkimagePhotoDataset)
gt_crop_size = 64
codebook_size = 128

# G and D have their own optimizers and SRGAN's train_step updates both: each gets its own DDP wrapper.
# Every parameter is used in its step, so find_unused_parameters stays False (tests/test_ddp_readiness.py).
model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel')

model = dict(
    type='SwinVQGANModel',
    generator=dict(
        type='SwinVQGAN',
        nf=32,
        ch_mult=(1, 2, 2, 2),
        num_res_blocks=1,
        codebook_size=codebook_size,
        embed_dim=16,
        swin_dim=32,
        swin_window=4,
        swin_depth=2,
        swin_num_rstb=1,
        swin_heads=4,
    ),
    discriminator=dict(type='UNetDiscriminatorWithSpectralNorm', in_channels=3, mid_channels=16, skip_connection=True),
    gan_loss=dict(type='GANLoss', gan_type='hinge', loss_weight=0.1),
    pixel_loss=dict(type='L1Loss', loss_weight=1.0, reduction='mean'),
    ssim_loss=dict(type='SSIMLoss', loss_weight=1.0),
    perceptual_loss=None,  # LPIPS off: nothing needs pretrained weights
    vq_loss_weight=1.0,
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
    dataset=dict(
        type='SkimagePhotoDataset', split='train', data_root=data_root, data_prefix=dict(gt=''), pipeline=train_pipeline
    ),
)
val_dataloader = dict(
    num_workers=0,
    dataset=dict(
        type='SkimagePhotoDataset', split='heldout', data_root=data_root, data_prefix=dict(gt=''), indices=None
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

train_cfg = dict(type='IterBasedTrainLoop', max_iters=300, val_interval=100)
auto_scale_lr = dict(enable=False, base_batch_size=4)  # --auto-scale-lr: LRs set for one process x batch 4
# Faster than the paper's 1e-4 (G) / 4e-4 (D) for a few hundred steps; a D as fast as 1e-3 stalls the tiny G.
optim_wrapper = dict(
    constructor='MultiOptimWrapperConstructor',
    generator=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=5e-4, betas=(0.9, 0.99), fused=True)),
    discriminator=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.99), fused=True)),
)
param_scheduler = None

default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=300))
custom_hooks = []  # no per-image visualisation dumps in the tiny run
log_processor = dict(window_size=10)  # logged losses: mean of the last 10 iterations
