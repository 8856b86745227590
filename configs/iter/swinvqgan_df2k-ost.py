# Stage I of ITER: the Swin-VQGAN HQ autoencoder at paper scale (docs/faithfulness.md#stage-i-training).
# 4 GPUs x 8 images of 256x256 (batch 32), Adam 1e-4 (G) / 4e-4 (D), betas (0.9, 0.99), constant LR,
# 400k iterations. The authors' code ran 8 GPUs x 4 x accumulation 4 on 320 crops (same number of steps).
#   bash tools/dist_train.sh configs/iter/swinvqgan_df2k-ost.py 4
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/hq_only.py']

experiment_name = 'swinvqgan_df2k-ost'
work_dir = f'./work_dirs/{experiment_name}'

# LPIPS-VGG perceptual loss: pyiqa's LPIPS v0.1 VGG head and torchvision's ImageNet VGG16, local files only.
# Put them at these paths (or in pyiqa's / torch hub's cache and set the paths to None):
#   LPIPS_v0.1_vgg-a78928a0.pth (pyiqa weights), vgg16-397923af.pth (torchvision VGG16_Weights.IMAGENET1K_V1)
lpips_path = 'data/pretrained/LPIPS_v0.1_vgg-a78928a0.pth'
vgg_path = 'data/pretrained/vgg16-397923af.pth'

model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel')  # separate DDP for G and D

model = dict(
    type='SwinVQGANModel',
    generator=dict(type='SwinVQGAN'),  # released configuration (512 codes x 128, nf 128, Swin 256)
    discriminator=dict(type='UNetDiscriminatorWithSpectralNorm', in_channels=3, mid_channels=64, skip_connection=True),
    gan_loss=dict(type='GANLoss', gan_type='hinge', loss_weight=0.1),  # weight applies to G only
    pixel_loss=dict(type='L1Loss', loss_weight=1.0, reduction='mean'),
    ssim_loss=dict(type='SSIMLoss', loss_weight=1.0),
    perceptual_loss=dict(type='LPIPSLoss', loss_weight=1.0, lpips_path=lpips_path, vgg_path=vgg_path),
    vq_loss_weight=1.0,
    is_use_ema=False,  # the authors keep no EMA; to enable, set True and add the hook below
    train_cfg=dict(),
    test_cfg=dict(official_padding=False),
    data_preprocessor=dict(type='DataPreprocessor', mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0]),
)

train_cfg = dict(type='IterBasedTrainLoop', max_iters=400_000, val_interval=5000)
auto_scale_lr = dict(enable=False, base_batch_size=32)  # --auto-scale-lr: the paper's LRs are for 8 x 4 GPUs

optim_wrapper = dict(
    constructor='MultiOptimWrapperConstructor',
    generator=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.99), fused=True)),
    discriminator=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=4e-4, betas=(0.9, 0.99), fused=True)),
)
param_scheduler = None  # constant LR (the authors' MultiStepLR has gamma 1)

default_hooks = dict(logger=dict(interval=100), checkpoint=dict(interval=5000))
# EMA of the generator (with is_use_ema=True):
# custom_hooks = [
#     dict(type='BasicVisualizationHook', interval=1),
#     dict(type='WrapperAwareEMAHook', module_keys=('generator_ema', ), interval=1,  # MMagic's, DDP-safe
#          interp_cfg=dict(momentum=0.001)),
# ]
