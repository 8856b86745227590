# Tiny ITER x4 for CPU smoke runs: shrunk E_l / phi_e / phi_r on the tiny Swin-VQGAN of swinvqgan_tiny.py.
#   python tools/train.py configs/iter/swinvqgan_tiny.py      # stage I -> work_dirs/swinvqgan_tiny/iter_300.pth
#   python tools/train.py configs/iter/iter_x4_tiny.py        # stages II/III, a few minutes on CPU
#   python tools/test.py configs/iter/iter_x4_tiny.py work_dirs/iter_x4_tiny/iter_300.pth
# Data: scikit-image's photos (train / held-out split). Other data (every image of a folder):
#   --cfg-options train_dataloader.dataset.data_root=DIR val_dataloader.dataset.data_root=DIR
# (the top-level variables below are read when the file is parsed; --cfg-options on them alone does not reach
#  the dataloaders). LPIPS is off, so nothing needs pretrained weights.
_base_ = ['../_base_/default_runtime.py', '../_base_/datasets/realesrgan_x4.py']

experiment_name = 'iter_x4_tiny'
work_dir = f'./work_dirs/{experiment_name}'

scale = 4
gt_crop = 64  # a multiple of 32 (8 x the Swin window of 4)
data_root = None  # None = the photos that ship with scikit-image (SkimagePhotoDataset, train split)
val_data_root = data_root  # held-out split
stage1_config = 'swinvqgan_tiny.py'  # its final checkpoint is stage I (the pipeline trains it first)
codebook_size = 128
window = 4

# Must equal the generator of configs/iter/swinvqgan_tiny.py (tests/test_iter_model.py checks it).
tiny_vqgan = dict(
    type='SwinVQGAN',
    nf=32,
    ch_mult=(1, 2, 2, 2),
    num_res_blocks=1,
    codebook_size=codebook_size,
    embed_dim=16,
    swin_dim=32,
    swin_window=window,
    swin_depth=2,
    swin_num_rstb=1,
    swin_heads=4,
)

model = dict(
    type='ITERModel',
    generator=dict(
        type='ITERNet',
        scale=scale,
        vqgan=tiny_vqgan,
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
    test_cfg=dict(),  # RestoreOptions defaults (iter_mm/models/options.py); val_cfg: RestoreOptions.validation()
    val_cfg=dict(),
    data_preprocessor=dict(type='DataPreprocessor', mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0]),
)

train_pipeline = [
    dict(type='LoadImageFromFile', key='gt', channel_order='rgb'),
    dict(type='SetValues', dictionary=dict(scale=scale)),
    dict(type='Crop', keys=['gt'], crop_size=(gt_crop, gt_crop), random_crop=True, is_pad_zeros=True),  # small: padded
    dict(type='Flip', keys=['gt'], flip_ratio=0.5, direction='horizontal'),
    dict(type='Flip', keys=['gt'], flip_ratio=0.5, direction='vertical'),
    dict(type='RandomTransposeHW', keys=['gt'], transpose_ratio=0.5),
    *_base_.realesrgan_degradations,
    _base_.rgb_lq,  # the LQ's channel order, for MMagic's preprocessor (see the base)
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(type='SkimagePhotoDataset', split='train', data_root=data_root, pipeline=train_pipeline),
)
val_dataloader = dict(
    _base_.val_dataloader,
    num_workers=0,
    dataset=dict(_base_.val_dataloader.dataset, type='SkimagePhotoDataset', split='heldout', data_root=val_data_root),
)
val_evaluator = dict(
    type='Evaluator',
    metrics=[
        dict(type='PSNR', crop_border=4, convert_to='Y'),
        dict(type='SSIM', crop_border=4, convert_to='Y'),
        dict(type='TolerantNIQE', input_order='CHW', convert_to='Y', crop_border=0),  # NaN, not a crash, if flat
    ],
)
test_dataloader = val_dataloader
test_evaluator = val_evaluator
test_cfg = dict(type='MultiTestLoop')

train_cfg = dict(type='IterBasedTrainLoop', max_iters=300, val_interval=300)
auto_scale_lr = dict(enable=False, base_batch_size=4)  # --auto-scale-lr: LRs set for one process x batch 4
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=5e-4, betas=(0.9, 0.99), fused=True))
param_scheduler = None

default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=300))
custom_hooks = []  # no per-image visualisation dumps in the tiny run
