# mmaction2 1.1.0 test config: the released Kinetics-400 TimeSformer (8x32, 224 px) with ATS
# added off-the-shelf (no fine-tuning), 1x3 views, evaluated by mmaction2's own test.py:
#
#   MMA=$(python -c 'import mmaction, os; print(os.path.dirname(mmaction.__file__))')/.mim/tools
#   python $MMA/test.py configs/mmaction2/timesformer_base_ats_k400_test.py TimeSformer_divST_8x32_224_K400.pyth
#   python $MMA/test.py configs/mmaction2/timesformer_base_ats_k400_test.py timesformer-base-finetuned-k400/
#
# The checkpoint is the official .pyth or a local Hugging Face directory, as released: the
# plugin's VideoATSCheckpointHook converts it to this recognizer's keys (no hand conversion).
# Data: the official validate.csv and the clips under data/kinetics400/val (class folders or
# flat), read by VideoATSDataset with the shipped Kinetics-400 class list (docs/checkpoints.md).

default_scope = 'mmaction'
custom_imports = dict(imports=['video_ats.integrations.mmaction'], allow_failed_imports=False)

num_classes = 400
model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='VideoATSTimeSformer',
        preset='timesformer_base',
        # ATS in the spatial attention of blocks 3, 4, 5 (0-based), as the paper.
        ats=dict(blocks=[3, 4, 5], ratio=0.75, sampler='its', score='cls_vnorm', scope='tube')),
    cls_head=dict(type='TimeSformerHead', num_classes=num_classes, in_channels=768, average_clips='prob'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[114.75, 114.75, 114.75],      # 0.45 / 0.225 on 0-255 pixels: the official TimeSformer's
        std=[57.375, 57.375, 57.375],
        format_shape='NCTHW'))

test_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=8, frame_interval=32, num_clips=1, test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 224)),
    dict(type='ThreeCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]
test_dataloader = dict(
    batch_size=4, num_workers=8, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='VideoATSDataset', data_root='data/kinetics400', ann_file='annotations/validate.csv',
                 data_prefix=dict(video='val'), class_list='kinetics400', num_classes=num_classes,
                 pipeline=test_pipeline, test_mode=True))
test_evaluator = dict(type='AccMetric')
test_cfg = dict(type='TestLoop')

custom_hooks = [dict(type='VideoATSCheckpointHook')]
default_hooks = dict(runtime_info=dict(type='RuntimeInfoHook'), timer=dict(type='IterTimerHook'),
                     logger=dict(type='LoggerHook', interval=100))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
# Logging, visualizer, load_from / resume: mmengine's defaults.
