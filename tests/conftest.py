"""Shared pytest fixtures.

Data fixtures (prefix ``data_``): tiny index-encoding videos and broken files, written once
per session. Index videos show their frame index as binary stripes across the full width
(video_ats.data.synthetic.write_index_video), 80x48 landscape unless named otherwise.
"""

import numpy as np
import pytest

from video_ats.data.synthetic import write_index_video


@pytest.fixture(scope="session")
def data_index_videos(tmp_path_factory) -> dict:
    """name -> path: "landscape" (60 frames, 30 fps), "short" (6 frames, 30 fps), "fps15"
    (30 frames, 15 fps), "mkv" (60 frames, 30 fps, a container whose header holds no frame
    count), "faststart" (as landscape, index before the frames)."""
    root = tmp_path_factory.mktemp("data_index_videos")
    specs = {
        "landscape": ("landscape.mp4", 60, 30, {}),
        "short": ("short.mp4", 6, 30, {}),
        "fps15": ("fps15.mp4", 30, 15, {}),
        "mkv": ("landscape.mkv", 60, 30, {}),
        "faststart": ("faststart.mp4", 60, 30, {"faststart": True}),
    }
    videos = {}
    for name, (file_name, num_frames, fps, options) in specs.items():
        videos[name] = root / file_name
        write_index_video(videos[name], num_frames, fps, 48, 80, **options)
    return videos


@pytest.fixture(scope="session")
def data_broken_videos(tmp_path_factory, data_index_videos) -> dict:
    """kind -> path of a video that cannot be used: "truncated" (first half of an mp4 whose
    index is at the end), "truncated_faststart" (first 60% of an mp4 whose index comes first),
    "random_bytes", "zero_length", "missing" (never written), "no_video_stream" (audio only)."""
    import av

    root = tmp_path_factory.mktemp("data_broken_videos")
    whole = data_index_videos["landscape"].read_bytes()
    faststart = data_index_videos["faststart"].read_bytes()
    paths = {kind: root / f"{kind}.mp4" for kind in (
        "truncated", "truncated_faststart", "random_bytes", "zero_length", "missing", "no_video_stream"
    )}
    paths["truncated"].write_bytes(whole[: len(whole) // 2])
    paths["truncated_faststart"].write_bytes(faststart[: len(faststart) * 6 // 10])
    paths["random_bytes"].write_bytes(np.random.default_rng(0).bytes(4096))
    paths["zero_length"].write_bytes(b"")
    with av.open(str(paths["no_video_stream"]), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for _ in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 16000
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return paths


def write_video(path, frames, fps, codec="libx264", pix_fmt="yuv420p", rotation=0, options=None):
    """Encode uint8 RGB frames (T, H, W, 3) with PyAV; ``rotation`` (degrees, counter-clockwise)
    goes into the container's display matrix, as a phone writes it."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps, options=dict(options or {}))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        if rotation:
            stream.set_display_rotation(rotation)
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
        container.mux(stream.encode())


def marked_frames(num_frames, height, width, seed=0):
    """Frames whose orientation shows: red grows down the rows, green along the columns, a white
    block sits in the top-left corner; plus noise that differs per frame."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    base = np.stack([255 * rows / height, 255 * cols / width, 128 + 0 * rows], axis=-1)
    frames = np.repeat(base[None], num_frames, axis=0) + rng.normal(0, 12, (num_frames, height, width, 3))
    frames[:, : height // 4, : width // 5] = 255
    return np.clip(frames, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def data_odd_videos(tmp_path_factory) -> dict:
    """name -> path of videos real downloads hold:

    "rotation_<r>" (r = 0, 90, 180, 270): the same 12 frames of 64x96, lossless H.264 4:4:4,
    with a display rotation of r degrees; "rotation_90_h48": 48x96 frames rotated by 90
    (decord 0.6 returns such frames with the wrong size); "av1": 20 frames of AV1 in mp4
    (None when this PyAV build has no AV1 encoder); "full_webm" / "cut_webm" (VP9) and
    "full_mkv" / "cut_mkv" (H.264): 60 frames at 30 fps and the first half of the same file
    (a download cut off midway); "folder.mp4": a folder named like a video.
    """
    import av

    root = tmp_path_factory.mktemp("data_odd_videos")
    videos = {}
    lossless = dict(codec="libx264", pix_fmt="yuv444p", options={"crf": "0"})
    for rotation in (0, 90, 180, 270):
        videos[f"rotation_{rotation}"] = root / f"rotation_{rotation}.mp4"
        write_video(videos[f"rotation_{rotation}"], marked_frames(12, 64, 96), 12, rotation=rotation, **lossless)
    videos["rotation_90_h48"] = root / "rotation_90_h48.mp4"
    write_video(videos["rotation_90_h48"], marked_frames(12, 48, 96), 12, rotation=90, **lossless)
    videos["av1"] = None
    if "libsvtav1" in av.codecs_available or "libaom-av1" in av.codecs_available:
        videos["av1"] = root / "av1.mp4"
        encoder = "libsvtav1" if "libsvtav1" in av.codecs_available else "libaom-av1"
        write_video(videos["av1"], marked_frames(20, 64, 96), 10, codec=encoder)
    for name, codec in (("webm", "libvpx-vp9"), ("mkv", "libx264")):
        full, cut = root / f"full.{name}", root / f"cut.{name}"
        write_video(full, marked_frames(60, 64, 96, seed=1), 30, codec=codec)
        data = full.read_bytes()
        cut.write_bytes(data[: len(data) // 2])
        videos[f"full_{name}"], videos[f"cut_{name}"] = full, cut
    videos["folder.mp4"] = root / "folder.mp4"
    videos["folder.mp4"].mkdir()
    return videos


# Engine fixtures (prefix ``engine_``): a tiny synthetic dataset in Kinetics layout and the
# config overrides that train and test a small model on it in seconds.

ENGINE_CLASSES = 3


@pytest.fixture(scope="session")
def engine_dataset(tmp_path_factory):
    """A synthetic dataset: 3 classes, 8 training and 2 validation clips per class, 86x64, 24 frames."""
    from video_ats.data import make_synthetic_dataset

    root = tmp_path_factory.mktemp("engine_dataset")
    make_synthetic_dataset(root, num_classes=ENGINE_CLASSES, videos_per_class={"train": 8, "val": 2},
                           num_frames=24, height=64, width=86, fps=12, clutter_levels=(0, 2), seed=1)
    return root


@pytest.fixture()
def engine_overrides(engine_dataset, tmp_path):
    """KEY VALUE overrides of configs/synthetic/timesformer_tiny.yaml for a run of seconds."""
    return [
        "OUTPUT_DIR", str(tmp_path / "run"), "DATA.PATH_TO_DATA_DIR", str(engine_dataset),
        "MODEL.NUM_CLASSES", str(ENGINE_CLASSES), "MODEL.EMBED_DIM", "32", "MODEL.NUM_HEADS", "2",
        "SOLVER.MAX_EPOCH", "2", "SOLVER.WARMUP_EPOCHS", "0.5", "TRAIN.BATCH_SIZE", "4",
        "TEST.BATCH_SIZE", "4", "DATA_LOADER.NUM_WORKERS", "0", "DATA.SAMPLING_RATE", "4",
    ]


# Visualizer and calibration fixtures (prefix ``viz_``): a handful of synthetic clips and a
# tiny TimeSformer whose sharpened random weights make the kept counts depend on the content.

VIZ_CLASSES = 3
VIZ_MODEL = dict(embed_dim=32, num_heads=2)


@pytest.fixture(scope="module")
def viz_one_thread():
    """torch on one thread for a module of tiny forwards: on 2 shared cores a second thread
    only waits for the first (a 6-clip forward of the tiny model: 20 ms vs > 1 s under load)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def viz_dataset(tmp_path_factory):
    """A synthetic dataset of 3 classes x 2 validation clips (clutter levels 0 and 3), 86x64, 24 frames."""
    from video_ats.data import make_synthetic_dataset

    root = tmp_path_factory.mktemp("viz_dataset")
    make_synthetic_dataset(root, num_classes=VIZ_CLASSES, videos_per_class={"val": 2}, num_frames=24, height=64,
                           width=86, fps=12, clutter_levels=(0, 3), seed=1)
    return root


@pytest.fixture(scope="session")
def viz_checkpoint(tmp_path_factory):
    """A sharpened tiny TimeSformer (tests/model_helpers.py) saved in this toolkit's format."""
    from model_helpers import tiny_model

    from video_ats.checkpoint import save_model_checkpoint

    path = tmp_path_factory.mktemp("viz_checkpoint") / "sharpened_tiny.pt"
    model = tiny_model("timesformer_tiny", num_classes=VIZ_CLASSES, **VIZ_MODEL)
    save_model_checkpoint(path, model, model_name="timesformer_tiny", model_kwargs=VIZ_MODEL)
    return path


@pytest.fixture()
def viz_overrides(viz_dataset, viz_checkpoint, tmp_path):
    """KEY VALUE overrides of configs/synthetic/timesformer_tiny.yaml: the tiny model with ATS
    (ratio 0.7) on viz_dataset, one center view per video, the sharpened checkpoint."""
    return [
        "OUTPUT_DIR", str(tmp_path / "run"), "DATA.PATH_TO_DATA_DIR", str(viz_dataset),
        "MODEL.NUM_CLASSES", str(VIZ_CLASSES), "MODEL.EMBED_DIM", str(VIZ_MODEL["embed_dim"]),
        "MODEL.NUM_HEADS", str(VIZ_MODEL["num_heads"]), "ATS.ENABLE", "True", "ATS.RATIO", "0.7",
        "DATA.SAMPLING_RATE", "4", "TEST.NUM_SPATIAL_CROPS", "1", "TEST.BATCH_SIZE", "6",
        "DATA_LOADER.NUM_WORKERS", "0", "TEST.CHECKPOINT_FILE", str(viz_checkpoint),
    ]


# Model fixtures: run a test once per forced CPU linear-layer path.


@pytest.fixture(params=["default", "onednn"])
def each_linear_kernel(request):
    """The test body runs with the linear layers forced onto one path, "default" (F.linear)
    or "onednn" (fused; where it cannot run, e.g. under autograd, the default path is taken)."""
    from video_ats.models.linear_kernels import linear_options

    with linear_options(kernel=request.param):
        yield request.param
