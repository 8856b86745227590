# ITER x2: iter_x4_realsr.py (same networks, losses, schedule, data) with an x2 LQ encoder and x2 pairs.
#   python tools/train_pipeline.py configs/iter/iter_x2_realsr.py  # stage I (swinvqgan_df2k-ost.py), then this
#   python tools/train.py configs/iter/iter_x2_realsr.py --stage1-checkpoint STAGE1.pth   # stage I trained already
#   bash tools/dist_train.sh configs/iter/iter_x2_realsr.py 4          # batch 16 = 4 per GPU x 4 GPUs (paper)
#   python tools/test.py configs/iter/iter_x2_realsr.py ITER_CKPT.pth   # real-world LQ, NIQE
# Paths (data, stage-I file, LPIPS weights), realworld_sets and the authors' released recipe: see iter_x4_realsr.py
# (their x2 run also starts from ITER_x2.pth: --stage1-checkpoint ITER_swinvqgan.pth --init-from ITER_x2.pth).
_base_ = ['./iter_x4_realsr.py']

experiment_name = 'iter_x2_realsr'
work_dir = f'./work_dirs/{experiment_name}'

scale = 2
model = dict(generator=dict(scale=scale, lq_encoder=dict(scale=scale)))

# The Real-ESRGAN degradations read the sample's `scale`: only the SetValues step of each pipeline changes.
_set_scale = dict(type='SetValues', dictionary=dict(scale=scale))
train_pipeline = [
    _set_scale if step['type'] == 'SetValues' and 'scale' in step['dictionary'] else step
    for step in _base_.train_pipeline
]
val_pipeline = [
    _set_scale if step['type'] == 'SetValues' and 'scale' in step['dictionary'] else step
    for step in _base_.val_pipeline
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))

# RealSR and DRealSR ship x2 LR images: the x4 config points at their x4 folders, the x2 model reads the x2 ones.
_realsr_x4 = _base_.realworld_test_sets['RealSR']
_realworld_x2_sets = dict(
    _base_.realworld_test_sets,
    RealSR=dict(
        _realsr_x4,
        datasets=[
            dict(d, data_prefix=dict(img=f'RealSR/{camera}/Test/2'), filename_tmpl=dict(img='{}_LR2'))
            for d, camera in zip(_realsr_x4['datasets'], ('Canon', 'Nikon'))
        ],
    ),
    DRealSR=dict(_base_.realworld_test_sets['DRealSR'], data_prefix=dict(img='DRealSR/Test_x2/test_LR')),
)
test_dataloader = [
    dict(_loader, dataset=_realworld_x2_sets[name])
    for _loader, name in zip(_base_.test_dataloader, _base_.realworld_sets)
]
