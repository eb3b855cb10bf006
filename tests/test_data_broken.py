"""Broken data: training replaces and counts, testing reports and excludes, nothing crashes.

The list holds 8 videos: 0 and 7 are good index videos, 1-6 are broken (truncated, random
bytes, zero length, missing, no video stream, truncated with the index first).
"""

import pytest
import torch
from torch.utils.data import DataLoader

from video_ats.data import KineticsDataset, aggregate_views, collate_views
from video_ats.data.decoders import DECODER_BACKENDS

BROKEN = ["truncated", "random_bytes", "zero_length", "missing", "no_video_stream", "truncated_faststart"]
BROKEN_INDICES = set(range(1, 7))
GOOD_INDICES = {0, 7}
OPTIONS = dict(num_frames=4, sampling_rate=2, crop_size=32, train_jitter_scales=(32, 40))


@pytest.fixture()
def mixed_list(tmp_path, data_index_videos, data_broken_videos):
    paths = [data_index_videos["landscape"]] + [data_broken_videos[k] for k in BROKEN] + [data_index_videos["fps15"]]
    listing = tmp_path / "mixed.txt"
    listing.write_text("".join(f"{path} {label}\n" for label, path in enumerate(paths)))
    return listing


@pytest.mark.parametrize("decoder", list(DECODER_BACKENDS))
def test_training_replaces_broken_videos_and_counts_them(mixed_list, decoder):
    dataset = KineticsDataset(mixed_list, "", "train", decoder=decoder, **OPTIONS)
    items = [dataset[index] for index in range(8)]
    for index, item in enumerate(items):
        assert item["ok"]
        assert item["label"] == item["video_index"]  # labels follow the loaded video
        if index in BROKEN_INDICES:
            assert item["replaced_from"] == index and item["video_index"] in GOOD_INDICES
        else:
            assert (item["replaced_from"], item["video_index"]) == (-1, index)
    assert dataset.num_replaced == 6
    assert set(dataset.failed) == BROKEN_INDICES
    assert dataset.failed[3] == "empty file (0 bytes)"
    assert dataset.failed[4] == "missing file"
    assert dataset.failed[5] == "no video stream"
    assert set(dataset.failed_paths) == {dataset.records[i].path for i in BROKEN_INDICES}


def test_training_with_workers_reports_replacements_through_the_items(mixed_list):
    dataset = KineticsDataset(mixed_list, "", "train", **OPTIONS)
    loader = DataLoader(
        dataset, batch_size=3, num_workers=2, collate_fn=collate_views, generator=torch.Generator().manual_seed(0)
    )
    replaced_from = torch.cat([batch["replaced_from"] for batch in loader])
    assert set(replaced_from[replaced_from >= 0].tolist()) == BROKEN_INDICES
    assert dataset.num_replaced == 0  # the workers counted, not this process


def test_training_gives_up_when_every_video_failed_naming_every_file(tmp_path, data_broken_videos):
    listing = tmp_path / "all_broken.txt"
    listing.write_text("".join(f"{data_broken_videos[kind]} 0\n" for kind in BROKEN))
    dataset = KineticsDataset(listing, "", "train", max_retries=30, **OPTIONS)
    with pytest.raises(RuntimeError, match=r"no decodable video in 6 tries") as error:
        dataset[0]
    message = str(error.value)
    for kind in BROKEN:
        assert f"{kind}.mp4: " in message
    assert "missing.mp4: missing file" in message and "zero_length.mp4: empty file" in message


def test_training_gives_up_after_max_retries(tmp_path, data_broken_videos):
    listing = tmp_path / "all_broken.txt"
    listing.write_text("".join(f"{data_broken_videos[kind]} 0\n" for kind in BROKEN))
    dataset = KineticsDataset(listing, "", "train", max_retries=2, **OPTIONS)
    with pytest.raises(RuntimeError, match=r"no decodable video in 3 tries \(item 0, max_retries=2\)"):
        dataset[0]


@pytest.mark.parametrize("decoder", list(DECODER_BACKENDS))
def test_testing_marks_broken_videos_and_never_raises(mixed_list, decoder):
    dataset = KineticsDataset(mixed_list, "", "test", decoder=decoder, test_num_clips=1, test_num_crops=3, **OPTIONS)
    items = [dataset[index] for index in range(len(dataset))]
    assert len(items) == 24
    for item in items:
        assert item["ok"] == (item["video_index"] in GOOD_INDICES)
        assert item["video"].shape == (3, 4, 32, 32)
        if not item["ok"]:
            assert not item["video"].any()
    assert set(dataset.failed) == BROKEN_INDICES


def test_validation_marks_broken_videos(mixed_list):
    dataset = KineticsDataset(mixed_list, "", "val", **OPTIONS)
    assert [dataset[index]["ok"] for index in range(8)] == [True] + [False] * 6 + [True]


def test_evaluation_with_workers_excludes_and_reports_broken_videos(mixed_list):
    dataset = KineticsDataset(mixed_list, "", "test", test_num_clips=2, test_num_crops=3, **OPTIONS)
    loader = DataLoader(dataset, batch_size=5, num_workers=2, collate_fn=collate_views)
    scores, video_index, ok = [], [], []
    for batch in loader:
        scores.append(batch["video"].mean(dim=(1, 2, 3, 4))[:, None].repeat(1, 3))  # stand-in logits
        video_index.append(batch["video_index"])
        ok.append(batch["ok"])
    result = aggregate_views(torch.cat(scores), torch.cat(video_index), torch.cat(ok))
    assert result.video_index.tolist() == [0, 7]
    assert result.excluded.tolist() == [1, 2, 3, 4, 5, 6]
