"""decord and PyAV decoders: same interface, same frames, real frame counts."""

import numpy as np
import pytest

from video_ats.data.decoders import DECODERS, VideoDecodeError, get_decoder
from video_ats.data.synthetic import make_synthetic_dataset, read_frame_index


@pytest.mark.parametrize("decoder", list(DECODERS))
def test_reports_frame_count_and_fps(decoder, data_index_videos):
    with get_decoder(decoder)(data_index_videos["landscape"]) as video:
        assert (video.num_frames, video.fps) == (60, 30.0)
    with get_decoder(decoder)(data_index_videos["fps15"]) as video:
        assert (video.num_frames, video.fps) == (30, 15.0)


@pytest.mark.parametrize("decoder", list(DECODERS))
def test_counts_frames_of_a_container_whose_header_has_no_count(decoder, data_index_videos):
    import av

    with av.open(str(data_index_videos["mkv"])) as container:
        assert container.streams.video[0].frames == 0  # what the header says
    with get_decoder(decoder)(data_index_videos["mkv"]) as video:
        assert video.num_frames == 60
        frames = video.get_frames([0, 59])
    assert [read_frame_index(frame, 60) for frame in frames] == [0, 59]


@pytest.mark.parametrize("decoder", list(DECODERS))
def test_returns_the_asked_frames_in_the_asked_order(decoder, data_index_videos):
    indices = [0, 2, 4, 7, 33, 59, 59, 12]
    with get_decoder(decoder)(data_index_videos["landscape"]) as video:
        frames = video.get_frames(indices)
    assert frames.shape == (8, 48, 80, 3) and frames.dtype == np.uint8
    assert [read_frame_index(frame, 60) for frame in frames] == indices


@pytest.mark.parametrize("decoder", list(DECODERS))
def test_a_reader_can_be_asked_for_frames_again(decoder, data_index_videos):
    with get_decoder(decoder)(data_index_videos["landscape"]) as video:
        first = video.get_frames([3, 10])
        second = video.get_frames([0, 5, 50])
    assert [read_frame_index(frame, 60) for frame in first] == [3, 10]
    assert [read_frame_index(frame, 60) for frame in second] == [0, 5, 50]


def test_both_backends_give_close_pixels_on_natural_content(tmp_path):
    dataset = make_synthetic_dataset(
        tmp_path / "synthetic", num_classes=1, videos_per_class={"train": 1}, num_frames=16,
        height=48, width=64, fps=10, clutter_levels=(3,),
    )
    clip = next((dataset.root / "train").rglob("*.mp4"))
    indices = [0, 5, 9, 15]
    with get_decoder("decord")(clip) as a, get_decoder("pyav")(clip) as b:
        assert (a.num_frames, a.fps) == (b.num_frames, b.fps) == (16, 10.0)
        first, second = a.get_frames(indices).astype(int), b.get_frames(indices).astype(int)
    difference = np.abs(first - second)
    assert difference.mean() < 1.0 and difference.max() <= 8


@pytest.mark.parametrize("decoder", list(DECODERS))
def test_index_outside_the_video_is_an_error(decoder, data_index_videos):
    with get_decoder(decoder)(data_index_videos["short"]) as video:
        with pytest.raises(IndexError, match=r"frame indices \[6\] outside \[0, 6\)"):
            video.get_frames([0, 6])


@pytest.mark.parametrize("decoder", list(DECODERS))
@pytest.mark.parametrize(
    "kind, reason",
    [
        ("missing", "missing file"),
        ("zero_length", "empty file"),
        ("random_bytes", "cannot open"),
        ("truncated", "cannot open"),
        ("truncated_faststart", "(cannot open|truncated)"),
        ("no_video_stream", "no video stream"),
    ],
)
def test_broken_file_raises_decode_error_with_path_and_reason(decoder, kind, reason, data_broken_videos):
    path = data_broken_videos[kind]
    with pytest.raises(VideoDecodeError, match=reason) as error:
        with get_decoder(decoder)(path) as video:
            video.get_frames(range(video.num_frames))
    assert error.value.path == str(path)
    assert str(path) in str(error.value)


def test_unknown_decoder_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"decoder 'opencv' is not one of \['decord', 'pyav'\]"):
        get_decoder("opencv")
