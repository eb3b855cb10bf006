"""KineticsDataset: views, sampled frames, items, DataLoader with workers.

Clips: T=4 frames, sampling rate 2, target 30 fps, crop 32 (the 48x80 frames become 32x53).
Windows: landscape (60 frames, 30 fps) W=8, D=52; fps15 (30 frames, 15 fps) W=4, D=26;
short (6 frames, 30 fps) W=8, D=0. In-window offsets 0, 7/3, 14/3, 7 (W=8) or 0, 1, 2, 3 (W=4).
"""

import numpy as np
import pytest
import torch
from optional_extras import require
from torch.utils.data import DataLoader

from video_ats.data import KineticsDataset, collate_views, read_frame_index
from video_ats.data.decoders import DECODER_BACKENDS

FRAMES = {"landscape": 60, "fps15": 30, "short": 6}
IDENTITY = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


@pytest.fixture()
def index_list(tmp_path, data_index_videos):
    """A "path label" list of landscape (label 5), fps15 (label 6), short (label 7)."""
    path = tmp_path / "list.txt"
    path.write_text("".join(f"{data_index_videos[name]} {5 + i}\n" for i, name in enumerate(FRAMES)))
    return path


def make(annotation, mode, **overrides):
    options = dict(num_frames=4, sampling_rate=2, crop_size=32, train_jitter_scales=(32, 40), **IDENTITY)
    return KineticsDataset(annotation, "", mode, **{**options, **overrides})


def frame_indices(item, num_video_frames):
    """Frame indices shown in an item's clip (video (3, T, H, W) with identity normalization)."""
    clip = item["video"].permute(1, 2, 3, 0) * 255
    return [read_frame_index(frame.numpy(), num_video_frames) for frame in clip]


def test_test_mode_has_clips_times_crops_views_per_video(index_list):
    dataset = make(index_list, "test", test_num_clips=2, test_num_crops=3)
    assert (dataset.num_videos, dataset.num_views, len(dataset)) == (3, 6, 18)
    assert dataset.labels == [5, 6, 7]
    item = dataset[10]  # video 1, view 4
    assert (item["video_index"], item["view_index"], item["label"], item["ok"]) == (1, 4, 6, True)
    assert item["video"].shape == (3, 4, 32, 32) and item["video"].dtype == torch.float32


@pytest.mark.parametrize("decoder", list(DECODER_BACKENDS))
def test_start_rule_test_clips_show_the_documented_frames(index_list, decoder):
    dataset = make(index_list, "test", test_num_clips=2, test_num_crops=3, clip_position="start", decoder=decoder)
    expected = {
        "landscape": [[0, 2, 4, 7], [26, 28, 30, 33]],  # starts 0, 52/2
        "fps15": [[0, 1, 2, 3], [13, 14, 15, 16]],  # starts 0, 26/2
        "short": [[0, 2, 4, 5], [0, 2, 4, 5]],  # 7 clamps to the last frame, 5
    }
    for video_index, (name, clips) in enumerate(expected.items()):
        for view_index in range(6):
            item = dataset[video_index * 6 + view_index]
            assert frame_indices(item, FRAMES[name]) == clips[view_index // 3], (name, view_index)


def test_middle_rule_test_clips_span_the_whole_video(index_list):
    dataset = make(index_list, "test", test_num_clips=2, test_num_crops=1, clip_position="middle")
    assert frame_indices(dataset[0], 60) == [0, 2, 4, 7]
    assert frame_indices(dataset[1], 60) == [52, 54, 56, 59]  # start D = 52


def test_val_mode_takes_one_middle_clip_and_center_crop(index_list):
    dataset = make(index_list, "val", test_num_clips=5, test_num_crops=3)
    assert (dataset.num_views, len(dataset)) == (1, 3)
    assert frame_indices(dataset[0], 60) == [26, 28, 30, 33]  # start 52/2
    assert frame_indices(dataset[1], 30) == [13, 14, 15, 16]  # start 26/2


def test_train_mode_items_show_a_window_of_the_documented_shape(index_list):
    # jitter (32, 32) keeps the whole height, so the stripes stay readable after the crop
    dataset = make(index_list, "train", train_jitter_scales=(32, 32))
    assert len(dataset) == 3
    for _ in range(5):
        item = dataset[0]
        shown = frame_indices(item, 60)
        assert 0 <= shown[0] <= 52 and shown[-1] - shown[0] == 7
        assert np.diff(shown).tolist() in ([2, 2, 3], [2, 3, 2], [3, 2, 2])
        assert (item["label"], item["video_index"], item["view_index"], item["ok"], item["replaced_from"]) == (
            5, 0, 0, True, -1
        )
        assert item["video"].shape == (3, 4, 32, 32)


def test_same_seed_repeats_the_augmentation_and_another_seed_changes_it(index_list):
    first = [make(index_list, "train", seed=0)[0]["video"] for _ in range(2)]
    other = make(index_list, "train", seed=1)[0]["video"]
    assert torch.equal(first[0], first[1])
    assert not torch.equal(first[0], other)


def test_dataloader_workers_see_every_test_view_once(index_list):
    dataset = make(index_list, "test", test_num_clips=2, test_num_crops=3)
    loader = DataLoader(dataset, batch_size=4, num_workers=2, collate_fn=collate_views)
    seen = []
    for batch in loader:
        assert batch["video"].shape[1:] == (3, 4, 32, 32)
        assert batch["label"].dtype == torch.int64 and batch["ok"].dtype == torch.bool
        seen += list(zip(batch["video_index"].tolist(), batch["view_index"].tolist()))
        assert batch["ok"].all()
    assert sorted(seen) == [(video, view) for video in range(3) for view in range(6)]


def test_dataloader_workers_draw_different_augmentations(tmp_path, data_index_videos):
    listing = tmp_path / "same.txt"
    listing.write_text(f"{data_index_videos['landscape']} 0\n" * 4)
    dataset = make(listing, "train", random_flip=True, allow_duplicates=True)
    loader = DataLoader(
        dataset, batch_size=1, num_workers=2, collate_fn=collate_views, generator=torch.Generator().manual_seed(0)
    )
    videos = [batch["video"][0] for batch in loader]  # items 0, 2 from worker 0; 1, 3 from worker 1
    assert not torch.equal(videos[0], videos[1])


def test_collate_views_stacks_videos_and_tensorizes_fields():
    items = [
        {"video": torch.zeros(3, 2, 4, 4), "label": 1, "video_index": 0, "view_index": 2, "ok": True, "replaced_from": -1},
        {"video": torch.ones(3, 2, 4, 4), "label": -1, "video_index": 1, "view_index": 0, "ok": False, "replaced_from": 4},
    ]
    batch = collate_views(items)
    assert batch["video"].shape == (2, 3, 2, 4, 4)
    assert batch["label"].tolist() == [1, -1] and batch["label"].dtype == torch.int64
    assert batch["ok"].tolist() == [True, False] and batch["ok"].dtype == torch.bool
    assert batch["replaced_from"].tolist() == [-1, 4]


def test_reads_the_synthetic_dataset_at_demo_settings(tmp_path):
    from video_ats.data import make_synthetic_dataset

    synthetic = make_synthetic_dataset(tmp_path / "s", num_classes=2, videos_per_class={"train": 2}, num_frames=24)
    dataset = KineticsDataset(
        synthetic.annotations["train"], synthetic.root, "train", num_frames=8, sampling_rate=2,
        crop_size=64, train_jitter_scales=(64, 80), class_list=synthetic.class_list,
    )
    assert dataset.classes == list(synthetic.classes)
    assert dataset[0]["video"].shape == (3, 8, 64, 64)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"train_jitter_scales": (24, 40)}, r"train_jitter_scales \(24, 40\) must satisfy crop_size \(32\)"),
        ({"clip_position": "end"}, "clip_position 'end' is not one of"),
        ({"test_num_crops": 2}, "test_num_crops must be one of"),
        ({"decoder": "opencv"}, "decoder 'opencv' is not one of"),
    ],
)
def test_bad_settings_are_errors_naming_the_setting(index_list, overrides, message):
    with pytest.raises(ValueError, match=message):
        make(index_list, "test", **overrides)


def test_unknown_mode_is_an_error(index_list):
    with pytest.raises(ValueError, match="mode 'eval' is not one of"):
        make(index_list, "eval")


# --- Bad annotations fail when the dataset is built, not when the sampler draws them. -----------


@pytest.mark.parametrize("mode", ["train", "val"])
def test_a_row_without_a_label_stops_a_train_or_val_split_when_it_is_built(tmp_path, data_index_videos, mode):
    from video_ats.data import AnnotationError

    listing = tmp_path / "list.txt"
    listing.write_text(f"{data_index_videos['landscape']} 0\n{data_index_videos['fps15']}\n")
    with pytest.raises(AnnotationError, match=r"list\.txt:2: 1 of 2 rows has no label \(lines 2\)"):
        make(listing, mode)


def test_a_test_split_may_have_rows_without_a_label(tmp_path, data_index_videos):
    listing = tmp_path / "list.txt"
    listing.write_text(f"{data_index_videos['landscape']}\n{data_index_videos['fps15']} 1\n")
    assert make(listing, "test").labels == [-1, 1]


@pytest.mark.parametrize("mode", ["train", "val", "test"])
def test_a_label_outside_num_classes_stops_any_split_when_it_is_built(tmp_path, data_index_videos, mode):
    from video_ats.data import AnnotationError

    listing = tmp_path / "list.txt"
    listing.write_text(f"{data_index_videos['landscape']} 0\n{data_index_videos['fps15']} 3\n")
    with pytest.raises(AnnotationError, match=r"list\.txt:2: 1 row has a label outside the model's 3 classes"):
        make(listing, mode, num_classes=3)
    assert make(listing, mode, num_classes=4).labels == [0, 3]


def test_a_repeated_video_is_an_error_unless_allowed_then_a_warning_with_the_count(tmp_path, data_index_videos,
                                                                                    caplog):
    from video_ats.data import AnnotationError

    listing = tmp_path / "list.txt"
    listing.write_text(f"{data_index_videos['landscape']} 0\n{data_index_videos['fps15']} 1\n"
                       f"{data_index_videos['landscape']} 0\n")
    with pytest.raises(AnnotationError, match=r"list\.txt:3: 1 row repeats a video of an earlier row \(line 3 "
                                              r"repeats line 1\); remove them, or allow them"):
        make(listing, "train")
    dataset = make(listing, "train", allow_duplicates=True)
    assert dataset.num_videos == 3
    assert "1 row repeats a video of an earlier row" in caplog.text


def untrimmed_csv(tmp_path, seconds, window):
    """A Kinetics CSV of one clip whose file is named by its bare youtube_id: an index video of
    `seconds` s at 10 fps (frame i shows i), the row asking for `window` = (start, end) s."""
    from video_ats.data import write_index_video

    (tmp_path / "videos" / "grow").mkdir(parents=True)
    write_index_video(tmp_path / "videos" / "grow" / "youtube0001.mp4", 10 * seconds, 10, 48, 80)
    csv = tmp_path / "train.csv"
    csv.write_text(f"label,youtube_id,time_start,time_end,split\ngrow,youtube0001,{window[0]},{window[1]},train\n")
    return csv


@pytest.mark.parametrize("mode", ["train", "test"])
def test_an_untrimmed_download_is_sampled_inside_the_row_time_window(tmp_path, mode):
    csv = untrimmed_csv(tmp_path, seconds=10, window=(4, 6))       # frames 40..59 of 100
    # Short side 32 = crop: only the width is cropped, so the index stripes stay readable.
    dataset = KineticsDataset(csv, tmp_path / "videos", mode, num_frames=4, sampling_rate=2, target_fps=10,
                              crop_size=32, train_jitter_scales=(32, 32), test_num_crops=1, **IDENTITY)
    for epoch in range(3):
        dataset.set_epoch(epoch)
        shown = frame_indices(dataset[0], 100)
        assert all(40 <= index < 60 for index in shown), shown
    # Window W = 4 x 2 = 8 frames at 10 fps inside 20: the test clip ("start" rule) starts at 40.
    if mode == "test":
        assert shown == [40, 42, 44, 47]


def test_a_file_named_by_bare_youtube_id_no_longer_than_the_window_is_the_clip_itself(tmp_path):
    csv = untrimmed_csv(tmp_path, seconds=2, window=(30, 32))      # a trimmed clip under the bare name
    dataset = KineticsDataset(csv, tmp_path / "videos", "test", num_frames=4, sampling_rate=5, target_fps=10,
                              crop_size=32, train_jitter_scales=(32, 40), test_num_crops=1, **IDENTITY)
    assert frame_indices(dataset[0], 20) == [0, 6, 12, 19]


def test_the_auto_decoder_reads_each_video_with_the_decoder_that_can(tmp_path, data_index_videos, data_odd_videos):
    require(data_odd_videos["av1"] is not None, "this PyAV build has no AV1 encoder to write the test video")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{data_index_videos['landscape']} 0\n{data_odd_videos['av1']} 1\n")
    assert not make(listing, "val")[1]["ok"]                        # decord alone cannot decode AV1
    dataset = make(listing, "val", decoder="auto")
    assert [dataset[i]["ok"] for i in range(2)] == [True, True]
