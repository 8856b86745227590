# Evaluate the tiny ITER model on real LQ photos without GT (no-reference NIQE, MMagic's code on Y, crop 0):
#   python tools/test.py configs/iter/iter_x4_tiny_realworld.py CKPT
# The folder defaults to data/realworld_lq (put your low-quality photos there), or point it elsewhere with
#   --cfg-options test_dataloader.dataset.data_root=/path/to/lq_folder
# For the paper's test sets (RealSR, DRealSR, DPED-iphone, RealSRSet) use configs/iter/iter_x4_realsr.py.
_base_ = ['./iter_x4_tiny.py']

realworld_lq_root = 'data/realworld_lq'  # a folder you create; a missing one is named at build time
# As configs/_base_/datasets/realworld_lq_niqe.py (metrics receive pred_img in BGR order from MMagic's preprocessor).
niqe_metric = dict(
    type='PyIQAMetric',
    metric_name='niqe',
    niqe_impl='mmagic',
    convert_to='Y',
    channel_order='bgr',
    crop_border=0,
    metric_key='NIQE',
    prefix='RealWorldLQ',
)

test_dataloader = dict(
    num_workers=0,
    batch_size=1,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        _delete_=True,  # not a merge with the base's SkimagePhotoDataset (whose split this dataset does not take)
        type='CheckedImageDataset',
        metainfo=dict(dataset_type='realworld_lq', task_name='real_sr'),
        data_root=realworld_lq_root,
        data_prefix=dict(img=''),
        pipeline=[dict(type='LoadImageFromFile', key='img', channel_order='rgb'), dict(type='PackInputs')],
        test_mode=True,
    ),
)
test_evaluator = dict(type='Evaluator', metrics=[niqe_metric])
# LQ-only samples have no gt_path: name visualisations after the input.
visualizer = dict(fn_key='img_path', img_keys=['input', 'pred_img'])
