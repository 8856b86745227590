# ITER x4 (stages II/III: E_l, phi_e, phi_r on a frozen Swin-VQGAN) on DF2K+OST with on-the-fly Real-ESRGAN pairs.
#   python tools/train_pipeline.py configs/iter/iter_x4_realsr.py  # stage I (swinvqgan_df2k-ost.py), then this
#   python tools/train.py configs/iter/iter_x4_realsr.py --stage1-checkpoint STAGE1.pth   # stage I trained already
#   bash tools/dist_train.sh configs/iter/iter_x4_realsr.py 4          # batch 16 = 4 per GPU x 4 GPUs (paper)
#   python tools/test.py configs/iter/iter_x4_realsr.py ITER_CKPT.pth   # real-world LQ, NIQE
# Paper settings (docs/faithfulness.md#optimisation-and-validation): Adam 1e-4, betas (0.9, 0.99), constant LR, 400k
# iterations, batch 16, GT 256.
# The authors' released run instead: GT 320 (edit `gt_crop` below), 4 per GPU x 8 GPUs with
#   --cfg-options optim_wrapper.accumulative_counts=4 train_cfg.max_iters=1600000 (effective batch 128; 1.6M loop
#   iterations = 400k optimizer steps), their released codebook as the frozen stage I and the x4 network started
#   from their x2 model (every tensor whose name and shape match; docs/finetuning.md):
#   --stage1-checkpoint ITER_swinvqgan.pth --init-from ITER_x2.pth
#   They also trained in bf16 (--amp), counted phi_e's class-balanced weights per GPU
#   (model.eval_lq_loss.sync_counts=False; ours sum them over GPUs) and per micro-batch as accumulation here does
#   (docs/training.md), and read pre-degraded LQ/GT pairs instead of degrading on the fly.
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/datasets/realesrgan_x4.py',
    '../_base_/datasets/realworld_lq_niqe.py',
]

experiment_name = 'iter_x4_realsr'
work_dir = f'./work_dirs/{experiment_name}'

scale = 4
gt_crop = 256  # paper; the authors' code uses 320. Must be a multiple of 64 (8 x the Swin window of 8).
data_root = 'data/df2k_ost/HQ'  # HQ training images (DIV2K + Flickr2K + OST)
val_data_root = 'data/DIV2K/DIV2K_valid_HR'  # HQ validation images, degraded with a fixed seed per image
# `tools/test.py`: real-world LQ sets (no GT) under data/realworld, NIQE; keep the ones you have (folder layouts
# and root: configs/_base_/datasets/realworld_lq_niqe.py).
realworld_sets = ['RealSR', 'DRealSR', 'DPED_iphone', 'RealSRSet']
# Stage I: this config's stage-I checkpoint is the final one of stage1_config's run
# (work_dirs/swinvqgan_df2k-ost/iter_400000.pth) unless model.stage1_checkpoint names one (ours, or the authors'
# ITER_swinvqgan.pth as it is). Loaded, frozen, when training starts.
stage1_config = 'swinvqgan_df2k-ost.py'  # the stage-I config (tools/train_pipeline.py trains it first)
# LPIPS-VGG loss weights (pyiqa's LPIPS v0.1 VGG head + torchvision's ImageNet VGG16); nothing is downloaded.
lpips_vgg_path = 'pretrained/LPIPS_v0.1_vgg-a78928a0.pth'
vgg16_path = 'pretrained/vgg16-397923af.pth'
# LPIPS (AlexNet) validation metric, the authors' key metric; set False to validate without its weights.
use_lpips_metric = True
lpips_alex_path = 'pretrained/LPIPS_v0.1_alex-df73285e.pth'
alexnet_path = 'pretrained/alexnet-owt-7be5be79.pth'

model = dict(
    type='ITERModel',
    generator=dict(
        type='ITERNet',
        scale=scale,
        vqgan=dict(type='SwinVQGAN'),  # released configuration (docs/faithfulness.md#swin-vqgan)
        lq_encoder=dict(type='LQEncoder', scale=scale),
        evaluator=dict(type='TokenEvaluationNet'),
        refiner=dict(type='TokenRefinementNet'),
    ),
    stage1_checkpoint=None,  # None: derived from stage1_config (above)
    init_from=None,  # an ITER checkpoint (e.g. the authors' ITER_x2.pth) initialising E_l / phi_e / phi_r
    lq_ce_weight=1.0,  # E_l token CE (Eq. 2)
    eval_lq_loss=dict(type='ClassBalancedCELoss', beta=0.9999, loss_weight=1.0, sync_counts=True),  # Eq. 9
    eval_refined_ce_weight=1.0,  # phi_e on argmax(phi_r)
    refine_ce_weight=1.0,  # phi_r CE, weighted by the masked fraction
    # LPIPS on the straight-through Gumbel decodes [E_l; phi_r] vs [GT; GT] (the authors' loss, weight 1.0)
    perceptual_loss=dict(type='LPIPSLoss', loss_weight=1.0, lpips_path=lpips_vgg_path, vgg_path=vgg16_path),
    # The authors' L1 on the E_l decode (weight 1.0), inert in their code; a real term with el_gumbel_grad=True.
    pixel_loss=dict(type='L1Loss', loss_weight=1.0, reduction='mean'),
    el_gumbel_grad=True,  # False: the official (inert) E_l Gumbel term, whose constants are then skipped (a decode
    # less per iteration, same gradients) unless compute_inert_terms=True
    # inference: the authors' script (alpha 0.7, T 8, linear schedule, temperatures 1)
    # restoration options: iter_mm.models.options.RestoreOptions, whose defaults are the authors' inference script
    # (alpha 0.7, 8 steps, linear schedule, seed 0, tiled above 720x720 LQ pixels); validation over
    # RestoreOptions.validation() (alpha 0.5, cosine: the authors' training-time validation). Write only changes.
    test_cfg=dict(),
    val_cfg=dict(),
    data_preprocessor=dict(type='DataPreprocessor', mean=[0.0, 0.0, 0.0], std=[255.0, 255.0, 255.0]),
)

_crop = dict(
    type='Crop', keys=['gt'], crop_size=(gt_crop, gt_crop), random_crop=True, is_pad_zeros=True
)  # small: padded
train_pipeline = [
    dict(type='LoadImageFromFile', key='gt', channel_order='rgb'),
    dict(type='SetValues', dictionary=dict(scale=scale)),
    _crop,
    dict(type='Flip', keys=['gt'], flip_ratio=0.5, direction='horizontal'),
    dict(type='Flip', keys=['gt'], flip_ratio=0.5, direction='vertical'),
    dict(type='RandomTransposeHW', keys=['gt'], transpose_ratio=0.5),
    *_base_.realesrgan_degradations,
    _base_.rgb_lq,  # the LQ's channel order, for MMagic's preprocessor (see the base)
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=4,  # per GPU; 4 GPUs -> 16
    num_workers=4,
    dataset=dict(data_root=data_root, pipeline=train_pipeline),
)

# validation: the first 10 DIV2K-valid images (as the authors), PSNR/SSIM on Y with crop 4, LPIPS (AlexNet)
val_dataloader = dict(dataset=dict(data_root=val_data_root, indices=10))
# (MMagic's preprocessor hands metrics pred_img and gt_img in BGR order, 0-255: channel_order='bgr')
_lpips_metric = [
    dict(
        type='PyIQAMetric',
        metric_name='lpips',
        prefix='LPIPS',
        channel_order='bgr',
        weight_files={'LPIPS_v0.1_alex-df73285e.pth': lpips_alex_path},
        backbone_path=alexnet_path,
    )
]
val_evaluator = dict(
    type='Evaluator',
    metrics=[
        dict(type='PSNR', crop_border=4, convert_to='Y'),
        dict(type='SSIM', crop_border=4, convert_to='Y'),
        *(_lpips_metric if use_lpips_metric else []),
    ],
)

# test: real-world LQ without GT, no-reference NIQE (MMagic's pristine model, Y channel, crop 0); pred_img reaches
# metrics in BGR order (MMagic's DataPreprocessor.destruct), hence channel_order='bgr'
test_dataloader = [
    dict(
        num_workers=2,
        batch_size=1,
        persistent_workers=False,
        drop_last=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=_base_.realworld_test_sets[name],
    )
    for name in realworld_sets
]
test_evaluator = [
    dict(type='Evaluator', metrics=[dict(_base_.realworld_niqe_metric, prefix=name, channel_order='bgr')])
    for name in realworld_sets
]

train_cfg = dict(type='IterBasedTrainLoop', max_iters=400_000, val_interval=5000)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='Adam',
        lr=1e-4,
        betas=(0.9, 0.99),
        weight_decay=0,  # E_l + phi_e + phi_r
        fused=True,
    ),  # one fused kernel per step: the same update to fp32 rounding, ~2.7x faster
    accumulative_counts=1,
)
param_scheduler = None  # constant LR (the authors' MultiStepLR has gamma 1)
auto_scale_lr = dict(enable=False, base_batch_size=16)

# MMagic's per-image dumps are off: its visualiser names files by `gt_path`, which the real-world test set lacks.
# Instead, every 20th test image gets a mosaic of its refinement steps (decoded tokens over keep-masks) in the
# visualiser's backends (work_dir/vis_data, TensorBoard if configured).
custom_hooks = [dict(type='RefinementVisualizationHook', interval=20, on_val=False, on_test=True)]
