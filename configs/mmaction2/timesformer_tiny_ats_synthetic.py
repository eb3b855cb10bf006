# mmaction2 1.1.0 config: this toolkit's tiny TimeSformer with ATS as an mmaction2 backbone, on
# the synthetic dataset. From the repository root (mmaction2's own tools ship inside its wheel):
#
#   pip install -e ".[mmaction]"                  # mmaction2 1.1.0, mmcv-lite 2.0.1, mmengine
#   python tools/make_synthetic.py cache/synthetic               # 6 classes, Kinetics layout
#   MMA=$(python -c 'import mmaction, os; print(os.path.dirname(mmaction.__file__))')/.mim/tools
#   python $MMA/train.py configs/mmaction2/timesformer_tiny_ats_synthetic.py --work-dir runs/mma
#   python $MMA/train.py configs/mmaction2/timesformer_tiny_ats_synthetic.py --work-dir runs/mma --resume
#   python $MMA/test.py configs/mmaction2/timesformer_tiny_ats_synthetic.py runs/mma/epoch_5.pth
#
# The data are this toolkit's annotation files (the official Kinetics CSV here; path / label
# lists work too) read by `VideoATSDataset`; point data_root at any dataset in these formats
# and set num_classes to match. What the bridge adds is `custom_imports`, the backbone dict,
# the dataset type and `custom_hooks` (any checkpoint video_ats reads as load_from / test.py's
# checkpoint); the rest is plain mmaction2 (see docs/checkpoints.md, "The mmaction2 bridge").

default_scope = 'mmaction'
custom_imports = dict(imports=['video_ats.integrations.mmaction'], allow_failed_imports=False)

num_classes = 6
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

dataset_type = 'VideoATSDataset'
data_root = 'cache/synthetic'                # what tools/make_synthetic.py writes
ann_file_train = 'train.csv'                 # relative to data_root
ann_file_val = 'validate.csv'
class_list = 'classes.txt'                   # fixes the label indices of both splits

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
dataset = dict(type=dataset_type, data_root=data_root, data_prefix=dict(video=''), class_list=class_list,
               num_classes=num_classes)
train_dataloader = dict(
    batch_size=4, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(dataset, ann_file=ann_file_train, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(dataset, ann_file=ann_file_val, pipeline=val_pipeline, test_mode=True))
test_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(dataset, ann_file=ann_file_val, pipeline=test_pipeline, test_mode=True))
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
# load_from / test.py's checkpoint may be any checkpoint video_ats reads (official .pyth, Hugging
# Face, mmaction2's own TimeSformer, video_ats): converted to this recognizer's keys, strictly.
custom_hooks = [dict(type='VideoATSCheckpointHook')]
log_processor = dict(type='LogProcessor', window_size=10, by_epoch=True)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='ActionVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
