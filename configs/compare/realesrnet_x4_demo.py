# Equal-budget baseline for the small-budget demo: MMagic's Real-ESRNet (RRDBNet trained with L1 on on-the-fly
# Real-ESRGAN degradations; MMagic's realesrnet_c64b23g32 config) shrunk to the demo's CPU budget, on the same
# data, degradation, held-out photos and metrics as configs/iter/iter_x4_demo.py.
#   OMP_NUM_THREADS=1 python tools/train.py configs/compare/realesrnet_x4_demo.py
# `max_iters` is set so that it trains for about as long as ITER's three demo stages together (README).
_base_ = ['../iter/iter_x4_demo.py']

experiment_name = 'realesrnet_x4_demo'
work_dir = f'./work_dirs/{experiment_name}'
max_iters = 2400
stage1_config = None  # one stage only

model_wrapper_cfg = dict(type='MMSeparateDistributedDataParallel')  # MMagic's GAN-family model
model = dict(
    _delete_=True,
    type='RealESRGAN',
    generator=dict(
        type='RRDBNet',
        in_channels=3,
        out_channels=3,
        mid_channels=32,
        num_blocks=6,
        growth_channels=16,
        upscale_factor=4,
    ),
    pixel_loss=dict(type='L1Loss', loss_weight=1.0, reduction='mean'),
    is_use_sharpened_gt_in_pixel=False,  # the demo pipeline has no unsharp-masked GT
    is_use_ema=False,
    train_cfg=dict(),
    test_cfg=dict(),
    data_preprocessor=dict(type='DataPreprocessor', mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0]),
)

train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(
    _delete_=True,
    constructor='MultiOptimWrapperConstructor',
    generator=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=2e-4, betas=(0.9, 0.99))),
)
param_scheduler = None
default_hooks = dict(checkpoint=dict(interval=max_iters // 3))
