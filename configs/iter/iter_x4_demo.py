# Small-budget demo, stages II+III: E_l, phi_e and phi_r on the frozen demo Swin-VQGAN, trained on the colour
# images that ship with scikit-image with the on-the-fly x4 Real-ESRGAN degradation; validated on held-out photos
# degraded with a fixed seed. Sized for ~12 minutes on 2 CPU cores with OMP_NUM_THREADS=1. Most of the demo's
# budget goes here: E_l is what limits the SR (1200 -> 3000 iterations: 18.4 -> 20.5 dB, README).
#   OMP_NUM_THREADS=1 python tools/train.py configs/iter/swinvqgan_demo.py   # stage I first
#   OMP_NUM_THREADS=1 python tools/train.py configs/iter/iter_x4_demo.py
#   python tools/demo_metrics.py --stage1 configs/iter/swinvqgan_demo.py work_dirs/swinvqgan_demo/iter_800.pth \
#       --iter configs/iter/iter_x4_demo.py work_dirs/iter_x4_demo/iter_3000.pth
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/realesrgan_x4.py']

experiment_name = 'iter_x4_demo'
work_dir = f'./work_dirs/{experiment_name}'

scale = 4
gt_crop = 64  # a multiple of 32 (8 x the Swin window of 4)
stage1_config = 'swinvqgan_demo.py'  # its final checkpoint is stage I (the pipeline trains it first)
codebook_size = 512
window = 4
max_iters = 3000

# Must equal the generator of configs/iter/swinvqgan_demo.py (tests/test_demo.py checks it).
demo_vqgan = dict(
    type='SwinVQGAN',
    nf=32,
    ch_mult=(1, 2, 2, 2),
    num_res_blocks=1,
    codebook_size=codebook_size,
    embed_dim=32,
    swin_dim=32,
    swin_window=window,
    swin_depth=2,
    swin_num_rstb=1,
    swin_heads=4,
    norm_groups=1,
)

model = dict(
    type='ITERModel',
    generator=dict(
        type='ITERNet',
        scale=scale,
        vqgan=demo_vqgan,
        lq_encoder=dict(
            type='LQEncoder',
            scale=scale,
            base_channels=16,
            feat_dim=32,
            codebook_size=codebook_size,
            swin_dim=32,
            swin_num_rstb=1,
            swin_depth=2,
            swin_window=window,
            swin_heads=4,
            norm_groups=8,
        ),
        evaluator=dict(
            type='TokenEvaluationNet',
            codebook_size=codebook_size,
            mid_dim=32,
            num_rstb=1,
            depth=2,
            window_size=window,
            num_heads=4,
        ),
        refiner=dict(
            type='TokenRefinementNet',
            codebook_size=codebook_size,
            mid_dim=32,
            num_rstb=1,
            depth=2,
            window_size=window,
            num_heads=4,
        ),
    ),
    stage1_checkpoint=None,  # None: the final checkpoint of stage1_config's run
    lq_ce_weight=1.0,
    eval_lq_loss=dict(type='ClassBalancedCELoss', beta=0.9999, loss_weight=1.0),
    eval_refined_ce_weight=1.0,
    refine_ce_weight=1.0,
    perceptual_loss=None,  # LPIPS off: nothing needs pretrained weights
    pixel_loss=dict(type='L1Loss', loss_weight=1.0, reduction='mean'),  # on the E_l Gumbel decode
    el_gumbel_grad=True,
    # argmax tokens (token_temperature 0): at this budget phi_r's distributions are flat, and sampling them at
    # temperature 1 (the paper) draws near-random tokens (16.5 dB against 20.5 with argmax, README)
    # + colour correction (Eq. 10): held-out colour error 15.7 -> 1.4, PSNR(Y) 21.5 -> 23.4 dB, NIQE equal
    # (docs/demo.md)
    test_cfg=dict(alpha=0.7, steps=8, schedule='linear', seed=0, token_temperature=0.0, color_correction=True),
    val_cfg=dict(alpha=0.5, steps=8, schedule='cosine', seed=0, token_temperature=0.0),
    data_preprocessor=dict(type='DataPreprocessor', mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0]),
)

# the base's pipeline with the demo's crop (the LQ's channel order is recorded by the base's `rgb_lq`)
train_pipeline = [
    step if step['type'] != 'Crop' else dict(step, crop_size=(gt_crop, gt_crop)) for step in _base_.train_pipeline
]
val_pipeline = _base_.val_pipeline  # the seeded degradation of the held-out photos
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(_delete_=True, type='SkimagePhotoDataset', split='train_colour', pipeline=train_pipeline),
)
heldout_dataset = dict(type='SkimagePhotoDataset', split='heldout', test_mode=True, pipeline=val_pipeline)
val_dataloader = dict(_base_.val_dataloader, num_workers=0, dataset=dict(_delete_=True, **heldout_dataset))
val_evaluator = dict(
    type='Evaluator',
    metrics=[
        dict(type='PSNR', crop_border=4, convert_to='Y'),
        dict(type='SSIM', crop_border=4, convert_to='Y'),
        dict(type='TolerantNIQE', input_order='CHW', convert_to='Y', crop_border=0),  # NaN, not a crash, if flat
    ],
)
# (the base has no test_dataloader to merge into, so this one is written without `_delete_`)
test_dataloader = dict(_base_.val_dataloader, num_workers=0, dataset=heldout_dataset)
test_evaluator = val_evaluator
test_cfg = dict(type='MultiTestLoop')

train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
auto_scale_lr = dict(enable=False, base_batch_size=4)  # --auto-scale-lr: LRs set for one process x batch 4
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-3, betas=(0.9, 0.99), fused=True))
# warm-up, then cosine decay to 5% (MMEngine's schedulers), as the demo stage I
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, end_factor=1.0, begin=0, end=100, by_epoch=False),
    dict(type='CosineAnnealingLR', eta_min_ratio=0.05, begin=100, end=max_iters, T_max=max_iters - 100, by_epoch=False),
]

default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=max_iters // 3))
custom_hooks = []
log_processor = dict(window_size=20)
