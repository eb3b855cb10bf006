# mmaction2 1.1.0 config: this toolkit's tiny TimeSformer with ATS as an mmaction2 backbone.
#
#   pip install -e ".[mmaction]"                  # mmaction2 1.1.0, mmcv-lite 2.0.1, mmengine
#   python -m mim train mmaction2 configs/mmaction2/timesformer_tiny_ats_synthetic.py   (or mmaction2's tools/train.py)
#
# The data lists are mmaction2 VideoDataset lists ("relative/path.mp4 label" per line) under
# data/synthetic/; point them at any small video dataset and set num_classes to match.
# Everything the bridge adds is in `custom_imports` and the backbone dict; the rest is plain
# mmaction2 (see docs/checkpoints.md, "The mmaction2 bridge").

default_scope = 'mmaction'
custom_imports = dict(imports=['video_ats.integrations.mmaction'], allow_failed_imports=False)

num_classes = 5
num_frames = 8
crop_size = 64

model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='VideoATSTimeSformer',
        preset='timesformer_tiny',          # any TimeSformer preset of video_ats.build_model
        num_frames=num_frames,              # build_model overrides: img_size, depth, ...
        img_size=crop_size,
        # ATS in the spatial attention of blocks 3, 4, 5, keeping at most half of the positions.
        ats=dict(blocks=[3, 4, 5], ratio=0.5, sampler='its', score='cls_vnorm', scope='tube'),
        # Any checkpoint video_ats.load_checkpoint reads (official .pyth, Hugging Face,
        # mmaction2, ImageNet ViT, video_ats); its classifier is dropped, cls_head replaces it.
        pretrained=None),
    cls_head=dict(type='TimeSformerHead', num_classes=num_classes, in_channels=96, average_clips='prob'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[114.75, 114.75, 114.75],      # 0.45 / 0.225 on 0-255 pixels, as the official TimeSformer
        std=[57.375, 57.375, 57.375],
        format_shape='NCTHW'))

dataset_type = 'VideoDataset'
data_root = 'data/synthetic/videos'
ann_file_train = 'data/synthetic/train_list_videos.txt'
ann_file_val = 'data/synthetic/val_list_videos.txt'

train_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=num_frames, frame_interval=2, num_clips=1),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 72)),
    dict(type='RandomCrop', size=crop_size),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
val_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=num_frames, frame_interval=2, num_clips=1, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, crop_size)),
    dict(type='CenterCrop', crop_size=crop_size),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
test_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=num_frames, frame_interval=2, num_clips=1, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, crop_size)),
    dict(type='ThreeCrop', crop_size=crop_size),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
train_dataloader = dict(
    batch_size=4, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, ann_file=ann_file_train, data_prefix=dict(video=data_root),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, ann_file=ann_file_val, data_prefix=dict(video=data_root),
                 pipeline=val_pipeline, test_mode=True))
test_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, ann_file=ann_file_val, data_prefix=dict(video=data_root),
                 pipeline=test_pipeline, test_mode=True))
val_evaluator = dict(type='AccMetric')
test_evaluator = val_evaluator

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=5, val_begin=1, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.005, momentum=0.9, weight_decay=1e-4, nesterov=True),
    paramwise_cfg=dict(custom_keys={
        '.backbone.cls_token': dict(decay_mult=0.0),
        '.backbone.pos_embed': dict(decay_mult=0.0),
        '.backbone.time_embed': dict(decay_mult=0.0)}),
    clip_grad=dict(max_norm=40, norm_type=2))
param_scheduler = [dict(type='MultiStepLR', begin=0, end=5, by_epoch=True, milestones=[3, 4], gamma=0.1)]

default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10, ignore_last=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, save_best='auto'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    sync_buffers=dict(type='SyncBuffersHook'))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='gloo'))
log_processor = dict(type='LogProcessor', window_size=10, by_epoch=True)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='ActionVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
