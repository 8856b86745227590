# Runtime shared by every iter-mm config: MMagic scope, the plugin import, hooks, logging and visualisation.
default_scope = 'mmagic'
custom_imports = dict(imports=['iter_mm'], allow_failed_imports=False)
save_dir = './work_dirs'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Keep the last checkpoints (plus the best one) so that `--resume` after a crash or a kill loses little.
    checkpoint=dict(
        type='CheckpointHook', interval=5000, by_epoch=False, max_keep_ckpts=5, save_last=True
    ),  # no out_dir: checkpoints go to the work dir, where --resume looks
    sampler_seed=dict(type='DistSamplerSeedHook'),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=1),
    dist_cfg=dict(backend='nccl'),
)
randomness = dict(seed=0, diff_rank_seed=True)

log_level = 'INFO'
log_processor = dict(type='LogProcessor', window_size=100, by_epoch=False)

load_from = None
resume = False

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='ConcatImageVisualizer',
    vis_backends=vis_backends,
    fn_key='gt_path',
    img_keys=['gt_img', 'input', 'pred_img'],
    bgr2rgb=True,
)
custom_hooks = [dict(type='BasicVisualizationHook', interval=1)]
