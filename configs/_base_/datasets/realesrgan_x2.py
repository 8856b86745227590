# On-the-fly x2 training pairs with the Real-ESRGAN second-order degradation: realesrgan_x4.py at scale 2.
# The degradation list is shared (it reads the sample's `scale`); only the pipelines that set the scale differ.
_base_ = ['./realesrgan_x4.py']

scale = 2

train_pipeline = [
    dict(type='LoadImageFromFile', key='gt', channel_order='rgb'),
    dict(type='SetValues', dictionary=dict(scale=scale)),
    *_base_.train_pipeline[2:],
]
val_pipeline = [
    dict(type='LoadImageFromFile', key='gt', channel_order='rgb'),
    dict(type='SetValues', dictionary=dict(scale=scale)),
    *_base_.val_pipeline[2:],
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
