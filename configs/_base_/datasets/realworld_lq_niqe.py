# Real-world LQ-only test sets (no GT), evaluated with no-reference NIQE (MMagic's, Y channel, crop 0).
# Expected layout under realworld_data_root (the public releases' folder structure):
#   RealSR/Canon/Test/4/*_LR4.png, RealSR/Nikon/Test/4/*_LR4.png   (RealSR V3; HR files in the same folder are skipped)
#   DRealSR/Test_x4/test_LR/*.png
#   DPED/iphone/test_data/full_size_test_images/*.jpg
#   RealSRSet/*.png                                               (BSRGAN's RealSRSet, 20 images)
# Remove entries from `realworld_test_sets` for sets you do not have; a missing folder fails when the dataloader
# is built, naming the path. For another scale, edit `realworld_scale` here (the RealSR/DRealSR folders follow it).
# Only test pieces and names prefixed `realworld_` are defined, so a model config can list this file next to a
# training dataset base (realesrgan_x4.py, ...) without duplicate keys.
realworld_scale = 4
realworld_data_root = 'data/realworld'

# MMagic's NIQE code (pristine parameters shipped with MMagic: offline), on the Y channel, crop 0, run through
# iter-mm's PyIQAMetric: MMagic's own `NIQE` metric raises KeyError('Mapping key was not found') when a sample has
# no `gt_img` (every LQ-only set). MMagic's DataPreprocessor hands metrics pred_img in BGR order: channel_order='bgr'.
realworld_niqe_metric = dict(
    type='PyIQAMetric',
    metric_name='niqe',
    niqe_impl='mmagic',
    convert_to='Y',
    channel_order='bgr',
    crop_border=0,
    metric_key='NIQE',
)

realworld_test_pipeline = [
    dict(type='LoadImageFromFile', key='img', channel_order='rgb'),
    dict(type='PackInputs'),
]

_realworld_realsr = [
    dict(
        type='CheckedImageDataset',
        metainfo=dict(dataset_type='realsr', task_name='real_sr'),
        data_root=realworld_data_root,
        data_prefix=dict(img=f'RealSR/{camera}/Test/{realworld_scale}'),
        filename_tmpl=dict(img=f'{{}}_LR{realworld_scale}'),
        pipeline=realworld_test_pipeline,
        test_mode=True,
    )
    for camera in ('Canon', 'Nikon')
]
realworld_test_sets = dict(
    RealSR=dict(type='ConcatDataset', datasets=_realworld_realsr),
    DRealSR=dict(
        type='CheckedImageDataset',
        metainfo=dict(dataset_type='drealsr', task_name='real_sr'),
        data_root=realworld_data_root,
        data_prefix=dict(img=f'DRealSR/Test_x{realworld_scale}/test_LR'),
        pipeline=realworld_test_pipeline,
        test_mode=True,
    ),
    DPED_iphone=dict(
        type='CheckedImageDataset',
        metainfo=dict(dataset_type='dped_iphone', task_name='real_sr'),
        data_root=realworld_data_root,
        data_prefix=dict(img='DPED/iphone/test_data/full_size_test_images'),
        pipeline=realworld_test_pipeline,
        test_mode=True,
    ),
    RealSRSet=dict(
        type='CheckedImageDataset',
        metainfo=dict(dataset_type='realsrset', task_name='real_sr'),
        data_root=realworld_data_root,
        data_prefix=dict(img='RealSRSet'),
        pipeline=realworld_test_pipeline,
        test_mode=True,
    ),
)

test_dataloader = [
    dict(
        num_workers=2,
        batch_size=1,
        persistent_workers=False,
        drop_last=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dataset,
    )
    for dataset in realworld_test_sets.values()
]
test_evaluator = [
    dict(type='Evaluator', metrics=[dict(realworld_niqe_metric, prefix=name)]) for name in realworld_test_sets
]
test_cfg = dict(type='MultiTestLoop')
