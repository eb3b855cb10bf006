"""Kinetics clip loading: annotations, decoders, clip sampling, transforms, the dataset, view
aggregation, a data check, a loading benchmark, and a synthetic dataset in Kinetics layout.

See docs/data.md for the formats, layouts, sampling formulas and the broken-data policy.
"""

from .annotations import (
    ANNOTATION_FORMATS,
    AnnotationError,
    Annotations,
    VideoRecord,
    load_class_list,
    read_annotations,
)
from .decoders import DECODERS, VideoDecodeError, VideoReader, get_decoder
from .kinetics import KineticsDataset, TestViews, collate_views
from .sampling import clip_window, sliding_windows, test_clip_indices, train_clip_indices
from .synthetic import (
    ACTION_CLASSES,
    SyntheticDataset,
    make_synthetic_dataset,
    read_frame_index,
    write_index_video,
)
from .transforms import short_side_resize, short_side_size, spatial_crops
from .views import AGGREGATIONS, aggregate_views

__all__ = [
    "ACTION_CLASSES",
    "AGGREGATIONS",
    "ANNOTATION_FORMATS",
    "AnnotationError",
    "Annotations",
    "DECODERS",
    "KineticsDataset",
    "SyntheticDataset",
    "TestViews",
    "VideoDecodeError",
    "VideoReader",
    "VideoRecord",
    "aggregate_views",
    "clip_window",
    "collate_views",
    "get_decoder",
    "load_class_list",
    "make_synthetic_dataset",
    "read_annotations",
    "read_frame_index",
    "short_side_resize",
    "short_side_size",
    "sliding_windows",
    "spatial_crops",
    "test_clip_indices",
    "train_clip_indices",
    "write_index_video",
]
