"""decord and PyAV decoders: same interface, same frames, real frame counts."""

import numpy as np
import pytest
from optional_extras import require

from video_ats.data.decoders import DECODER_BACKENDS, DECODER_NAMES, VideoDecodeError, get_decoder
from video_ats.data.synthetic import make_synthetic_dataset, read_frame_index


@pytest.mark.parametrize("decoder", list(DECODER_BACKENDS))
def test_reports_frame_count_and_fps(decoder, data_index_videos):
    with get_decoder(decoder)(data_index_videos["landscape"]) as video:
        assert (video.num_frames, video.fps) == (60, 30.0)
    with get_decoder(decoder)(data_index_videos["fps15"]) as video:
        assert (video.num_frames, video.fps) == (30, 15.0)


@pytest.mark.parametrize("decoder", list(DECODER_BACKENDS))
def test_counts_frames_of_a_container_whose_header_has_no_count(decoder, data_index_videos):
    import av

    with av.open(str(data_index_videos["mkv"])) as container:
        assert container.streams.video[0].frames == 0  # what the header says
    with get_decoder(decoder)(data_index_videos["mkv"]) as video:
        assert video.num_frames == 60
        frames = video.get_frames([0, 59])
    assert [read_frame_index(frame, 60) for frame in frames] == [0, 59]


@pytest.mark.parametrize("decoder", list(DECODER_BACKENDS))
def test_returns_the_asked_frames_in_the_asked_order(decoder, data_index_videos):
    indices = [0, 2, 4, 7, 33, 59, 59, 12]
    with get_decoder(decoder)(data_index_videos["landscape"]) as video:
        frames = video.get_frames(indices)
    assert frames.shape == (8, 48, 80, 3) and frames.dtype == np.uint8
    assert [read_frame_index(frame, 60) for frame in frames] == indices


@pytest.mark.parametrize("decoder", list(DECODER_BACKENDS))
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


@pytest.mark.parametrize("decoder", list(DECODER_BACKENDS))
def test_index_outside_the_video_is_an_error(decoder, data_index_videos):
    with get_decoder(decoder)(data_index_videos["short"]) as video:
        with pytest.raises(IndexError, match=r"frame indices \[6\] outside \[0, 6\)"):
            video.get_frames([0, 6])


@pytest.mark.parametrize("decoder", list(DECODER_BACKENDS))
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
    with pytest.raises(ValueError, match=r"decoder 'opencv' is not one of \['auto', 'decord', 'pyav'\]"):
        get_decoder("opencv")


# --- Videos as downloads hold them: rotated, AV1, cut off, folders. ----------------------------

ROTATIONS = [0, 90, 180, 270]


@pytest.mark.parametrize("rotation", ROTATIONS)
def test_both_decoders_give_the_same_upright_frames_of_a_rotated_video(rotation, data_odd_videos):
    # The display matrix turns the stored 64x96 frames counter-clockwise by `rotation` degrees:
    # np.rot90 by rotation / 90 quarter turns of the frames of the unrotated file.
    indices = [0, 5, 11]
    with get_decoder("pyav")(data_odd_videos["rotation_0"]) as video:
        stored = video.get_frames(indices)
    upright = np.rot90(stored, rotation // 90, axes=(1, 2))
    for decoder in DECODER_BACKENDS:
        with get_decoder(decoder)(data_odd_videos[f"rotation_{rotation}"]) as video:
            frames = video.get_frames(indices)
        assert frames.shape == ((3, 96, 64, 3) if rotation in (90, 270) else (3, 64, 96, 3)), decoder
        assert np.array_equal(frames, upright), decoder              # lossless 4:4:4: exact


def test_a_rotated_video_decord_mis_sizes_is_an_error_naming_the_other_decoders(data_odd_videos):
    path = data_odd_videos["rotation_90_h48"]
    with get_decoder("pyav")(path) as video:
        expected = video.get_frames([0, 7])
    assert expected.shape == (2, 96, 48, 3)
    try:
        with get_decoder("decord")(path) as video:
            frames = video.get_frames([0, 7])
    except VideoDecodeError as error:
        assert "use the pyav decoder, or auto" in error.reason
    else:      # a decord without the bug must give the same frames
        assert np.array_equal(frames, expected)
    with get_decoder("auto")(path) as video:
        assert np.array_equal(video.get_frames([0, 7]), expected)


def test_an_av1_video_that_decord_cannot_decode_says_so_and_the_other_decoders_read_it(data_odd_videos):
    require(data_odd_videos["av1"] is not None, "this PyAV build has no AV1 encoder to write the test video")
    path = data_odd_videos["av1"]
    with pytest.raises(VideoDecodeError, match=r"decord cannot decode its av1 video stream.*use the pyav decoder, "
                                               r"or auto"):
        get_decoder("decord")(path)
    with get_decoder("pyav")(path) as pyav, get_decoder("auto")(path) as auto:
        assert pyav.num_frames == auto.num_frames == 20
        assert np.array_equal(pyav.get_frames([0, 19]), auto.get_frames([0, 19]))


@pytest.mark.parametrize("container", ["webm", "mkv"])
@pytest.mark.parametrize("decoder", list(DECODER_NAMES))
def test_a_matroska_file_cut_in_half_is_refused_as_truncated(decoder, container, data_odd_videos):
    with get_decoder(decoder)(data_odd_videos[f"full_{container}"]) as video:
        assert video.num_frames == 60
        video.get_frames([0, 59])
    with pytest.raises(VideoDecodeError, match=r"truncated: the header states 2\.00 s \(60 frames at 30 fps\), "
                                               r"the file holds \d+ frames"):
        get_decoder(decoder)(data_odd_videos[f"cut_{container}"])


@pytest.mark.parametrize("decoder", list(DECODER_NAMES))
def test_a_folder_named_like_a_video_is_reported_as_a_folder(decoder, data_odd_videos):
    with pytest.raises(VideoDecodeError, match="is a folder, not a video file"):
        get_decoder(decoder)(data_odd_videos["folder.mp4"])
