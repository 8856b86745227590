# HQ-only data for stage I (Swin-VQGAN): the HQ image is both the input (`img`) and the target (`gt`).
# Paper scale: DF2K + OST HQ patches (docs/faithfulness.md#stage-i-training, #data), random 256 crops with flips /
# transposition;
# validation on the first 10 DIV2K validation images (whole images, batch 1).
# `img` is copied from `gt` together with its channel order: without `img_channel_order` MMagic's preprocessor takes
# the RGB input for BGR and the val/test metrics compare a channel-swapped reconstruction with the GT.
# Override the folders in a child config, or on the command line, e.g.
#   --cfg-options train_dataloader.dataset.data_root=DIR val_dataloader.dataset.data_root=DIR
data_root = 'data/df2k_ost'  # HQ training images (e.g. DIV2K + Flickr2K + OST, cut into sub-images)
train_gt_folder = 'HQ_sub'
val_data_root = 'data/DIV2K'
val_gt_folder = 'DIV2K_valid_HR'
gt_crop_size = 256

train_pipeline = [
    dict(type='LoadImageFromFile', key='gt', color_type='color', channel_order='rgb'),  # grey/RGBA/16-bit -> 8-bit RGB
    dict(
        type='Crop', keys=['gt'], crop_size=(gt_crop_size, gt_crop_size), random_crop=True, is_pad_zeros=True
    ),  # images smaller than the crop are zero-padded so batches stay stackable
    dict(type='Flip', keys=['gt'], flip_ratio=0.5, direction='horizontal'),
    dict(type='Flip', keys=['gt'], flip_ratio=0.5, direction='vertical'),
    dict(type='RandomTransposeHW', keys=['gt'], transpose_ratio=0.5),
    dict(type='CopyValues', src_keys=['gt', 'gt_channel_order'], dst_keys=['img', 'img_channel_order']),
    dict(type='PackInputs'),
]
val_pipeline = [
    dict(type='LoadImageFromFile', key='gt', color_type='color', channel_order='rgb'),
    dict(type='CopyValues', src_keys=['gt', 'gt_channel_order'], dst_keys=['img', 'img_channel_order']),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    num_workers=8,
    batch_size=8,  # per GPU; x 4 GPUs = 32 (paper)
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='CheckedImageDataset',
        metainfo=dict(dataset_type='df2k_ost', task_name='vq_autoencoding'),
        data_root=data_root,
        data_prefix=dict(gt=train_gt_folder),
        pipeline=train_pipeline,
    ),
)

val_dataloader = dict(
    num_workers=2,
    batch_size=1,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CheckedImageDataset',
        metainfo=dict(dataset_type='div2k_val', task_name='vq_autoencoding'),
        data_root=val_data_root,
        data_prefix=dict(gt=val_gt_folder),
        indices=10,  # the authors validate on the first 10 images
        test_mode=True,
        pipeline=val_pipeline,
    ),
)
test_dataloader = val_dataloader

# Authors: PSNR / SSIM on Y with crop_border 4 (docs/faithfulness.md#optimisation-and-validation); plus codebook usage
# of the tokens.
val_evaluator = dict(
    type='Evaluator',
    metrics=[
        dict(type='PSNR', crop_border=4, convert_to='Y'),
        dict(type='SSIM', crop_border=4, convert_to='Y'),
        dict(type='CodebookUsage', codebook_size=512),
    ],
)
test_evaluator = val_evaluator

val_cfg = dict(type='MultiValLoop')
test_cfg = dict(type='MultiTestLoop')
