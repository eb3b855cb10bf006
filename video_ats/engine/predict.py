"""Predictions for your own videos: the top classes of each video (and of each window of a long
one), what they cost in GFLOPs and kept tokens, and the time, for one file or an archive.

    predictor = Predictor("configs/synthetic/timesformer_tiny_zoo.yaml", "zoo/timesformer_tiny_seed0.pt")
    for record in predictor.predict(["my_videos/", "extra/*.mp4"]):
        print(record["path"], record["top_k"][0])

A video's views are the test protocol's: TEST.NUM_ENSEMBLE_VIEWS temporal clips x
TEST.NUM_SPATIAL_CROPS crops, sampled and cropped as `KineticsDataset` does in test mode
(`video_ats.data.TestViews`), run by the evaluator's `forward_views` and aggregated with
TEST.ENSEMBLE_METHOD by `aggregate_views`, so the scores are tools/test.py's per-video scores.

Decoding runs in DataLoader workers (DATA_LOADER.NUM_WORKERS), one video (or window) per item;
the main process packs views of several videos into batches of TEST.BATCH_SIZE views. A video
that cannot be read gives a record with its ``error`` and never stops the run. Records come
as videos finish, which is input order up to the interleaving of the workers.

Writing records to files, resuming and the formats: `video_ats.engine.prediction_files`;
the record fields: docs/predict.md.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from yacs.config import CfgNode

from ..checkpoint import load_checkpoint
from ..config import build_model_from_cfg, get_cfg, load_config, model_overrides
from ..data import VideoDecodeError, aggregate_views, get_decoder, load_class_list, sliding_windows
from ..data.annotations import VIDEO_EXTENSIONS
from .builders import class_names as cfg_class_names, test_views
from .distributed import resolve_device
from . import visualization as viz
from .evaluator import forward_views
from .progress import progress_bar
from .tester import checkpoint_to_test
from .trainer import autocast_dtype, seed_everything

logger = logging.getLogger(__name__)

# A text file with these extensions lists videos, one path per line (relative to its folder).
LIST_EXTENSIONS = (".txt", ".lst", ".list")
_GLOB_CHARACTERS = set("*?[")


# ---------------------------------------------------------------------------------------------
# Inputs


PathLike = Union[str, os.PathLike]


def expand_inputs(inputs: Union[PathLike, Iterable[PathLike]]) -> Tuple[List[str], List[Tuple[str, str]]]:
    """The video files the inputs name, in order, each once (absolute paths).

    Each input is a video file; a folder (searched recursively for files with the extensions
    the loader reads, `VIDEO_EXTENSIONS`, hidden files and folders skipped); a glob pattern
    (``**`` recursive; folders it matches are searched as above); or a text file
    (`LIST_EXTENSIONS`) of such inputs, one per line, relative to the text file's folder (blank
    lines and lines starting with ``#`` skipped). Any other path, existing or not, is taken as
    a video: reading it reports what is wrong with it.

    Returns (paths, problems): problems are (input, reason) for inputs that name nothing
    (a pattern matching no file, an empty folder, an unreadable list).
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    paths: List[str] = []
    problems: List[Tuple[str, str]] = []
    seen = set()

    def add(path: str) -> None:
        path = os.path.abspath(path)
        if path not in seen:
            seen.add(path)
            paths.append(path)

    def expand(item: str, base: str, depth: int) -> None:
        path = os.path.join(base, os.path.expanduser(item))
        if os.path.isdir(path):
            found = _videos_under(path)
            if not found:
                problems.append((item, f"no video files ({', '.join(VIDEO_EXTENSIONS)}) in the folder"))
            for video in found:
                add(video)
        elif os.path.isfile(path) and os.path.splitext(path)[1].lower() in LIST_EXTENSIONS:
            if depth > 4:
                problems.append((item, "lists nested more than 4 deep"))
                return
            try:
                with open(path, encoding="utf-8") as handle:
                    lines = [line.strip() for line in handle]
            except (OSError, UnicodeDecodeError) as error:
                problems.append((item, f"cannot read the list: {error}"))
                return
            for line in lines:
                if line and not line.startswith("#"):
                    expand(line, os.path.dirname(os.path.abspath(path)), depth + 1)
        elif not os.path.exists(path) and _GLOB_CHARACTERS & set(item):
            matches = sorted(glob.glob(path, recursive=True))
            if not matches:
                problems.append((item, "no file matches the pattern"))
            for match in matches:
                expand(match, "", depth)
        else:
            add(path)

    for item in inputs:
        expand(os.fspath(item), "", 0)
    return paths, problems


def _videos_under(folder: str) -> List[str]:
    """The video files under ``folder``, in sorted path order."""
    found = []
    for root, folders, files in os.walk(folder):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        found.extend(os.path.join(root, name) for name in sorted(files)
                     if not name.startswith(".") and os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS)
    return sorted(found)


# ---------------------------------------------------------------------------------------------
# Decoding: one item per video, or per window of a video


class VideoViewStream(IterableDataset):
    """The views of each video (or of each window of it), decoded in DataLoader workers.

    Worker w of W reads videos w, w + W, ... . Items (dicts):

    - ``ok`` True: video_index, path, window_index, num_windows, frame_range (start, end),
      num_frames, fps, views float32 (V, C, T, S, S) in view order, decode_seconds.
    - ``ok`` False: video_index, path, reason; the last item of that video (earlier windows of it
      may have come before).
    """

    def __init__(self, paths: Sequence[str], views, decoder: str, window: Optional[float] = None,
                 stride: Optional[float] = None):
        self.paths, self.views, self.decoder = list(paths), views, decoder
        self.window, self.stride = window, stride

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for index in range(worker, len(self.paths), workers):
            yield from self._video_items(index)

    def _video_items(self, index: int):
        path = self.paths[index]
        start = time.perf_counter()
        try:
            with get_decoder(self.decoder)(path) as video:
                ranges = ([(0, video.num_frames)] if self.window is None
                          else sliding_windows(video.num_frames, video.fps, self.window, self.stride))
                for number, frame_range in enumerate(ranges):
                    views = self.views.decode(video, frame_range)
                    item = {"ok": True, "video_index": index, "path": path, "window_index": number,
                            "num_windows": len(ranges), "frame_range": frame_range, "num_frames": video.num_frames,
                            "fps": video.fps, "views": views, "decode_seconds": time.perf_counter() - start}
                    yield item
                    start = time.perf_counter()
        except VideoDecodeError as error:
            yield {"ok": False, "video_index": index, "path": path, "reason": error.reason}
        except Exception as error:  # one strange file must not end a run over an archive
            message = (str(error).strip().splitlines() or [""])[0]
            yield {"ok": False, "video_index": index, "path": path, "reason": f"{type(error).__name__}: {message}"}


def _identity(item):
    return item


# ---------------------------------------------------------------------------------------------
# Per video: the views' outputs as batches return them, then the record


@dataclass
class _Window:
    index: int
    frame_range: Tuple[int, int]
    logits: List[Optional[torch.Tensor]]
    gflops: List[float]
    kept: List[Optional[torch.Tensor]]


@dataclass
class _Video:
    index: int
    path: str
    windows: List[_Window] = field(default_factory=list)
    num_windows: Optional[int] = None
    num_frames: int = 0
    fps: float = 0.0
    decode_seconds: float = 0.0
    model_seconds: float = 0.0
    pending_views: int = 0
    error: Optional[str] = None
    visualization: Optional[str] = None

    @property
    def finished(self) -> bool:
        return self.error is not None or (len(self.windows) == self.num_windows and self.pending_views == 0)


@dataclass
class PredictionStats:
    """What a `Predictor.predict` run did: videos predicted and failed, wall time, seconds in
    model forwards, seconds decoding (summed over workers) and seconds the main process waited
    for decoded views."""

    videos: int = 0
    failed: int = 0
    views: int = 0
    wall_seconds: float = 0.0
    model_seconds: float = 0.0
    decode_seconds: float = 0.0
    wait_seconds: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class Predictor:
    """A model with its weights, class names and test views, ready to predict videos.

    Args:
        model: a config (a CfgNode or the path of a YAML under configs/) to build the model and
            take the views from, or a model from `video_ats.build_model`.
        checkpoint: weights to load (any format `video_ats.load_checkpoint` reads). With a
            config and no checkpoint: TEST.CHECKPOINT_FILE, else the newest checkpoint in
            OUTPUT_DIR, else MODEL.PRETRAINED, as tools/test.py; ``random_weights`` loads none.
            With a model and no checkpoint: the model's own weights.
        class_names: a list, a class-list file or "kinetics400" / "kinetics600"; None takes
            DATA.CLASS_LIST of the config (names are then null when it is empty too). Its length
            must be the model's class count.
        cfg: with a model object, the config of the views (decoder, sampling, crops,
            normalisation, TEST.*); None takes video_ats/config.py's defaults with the model's
            frames and image size.
        top_k: classes per record. window, stride: seconds; predict each window of
            ``window`` seconds starting every ``stride`` (default ``window``) seconds too.
        all_scores: add every class's aggregated score to each record (``scores``).
        visualize: a folder for each video's kept-token overlay (needs ATS).
        batch_size, num_workers, device: default TEST.BATCH_SIZE (views per forward),
            DATA_LOADER.NUM_WORKERS, DEVICE.
    Raises:
        ValueError, before any video is read: a class list of the wrong length, views the
        model cannot take, bad window settings, weights that do not load.
    """

    def __init__(self, model: Union[CfgNode, str, os.PathLike, torch.nn.Module], checkpoint=None,
                 class_names: Union[Sequence[str], str, os.PathLike, None] = None, *, cfg: Optional[CfgNode] = None,
                 top_k: int = 5, window: Optional[float] = None, stride: Optional[float] = None,
                 all_scores: bool = False, visualize: Union[str, os.PathLike, None] = None,
                 batch_size: Optional[int] = None, num_workers: Optional[int] = None, device: Optional[str] = None,
                 random_weights: bool = False):
        if isinstance(model, (str, os.PathLike)):
            model = load_config(os.fspath(model))
        self.from_config = isinstance(model, CfgNode)
        if self.from_config:
            cfg, self.model, self.checkpoint = model, *self._model_from_cfg(model, checkpoint, random_weights)
        else:
            self.model, self.checkpoint = model, None
            cfg = cfg if cfg is not None else self._default_cfg(model)
            if checkpoint is not None:
        
                load_checkpoint(model, checkpoint)
                self.checkpoint = _file_name(checkpoint)
        self.cfg = cfg
        self.num_classes = int(self.model.num_classes)
        self.class_names = self._class_names(class_names, cfg)
        self.views = test_views(cfg, self.model)
        self._check_views()
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        self.top_k = min(int(top_k), self.num_classes)
        if window is None and stride is not None:
            raise ValueError("a stride needs a window (--window SECONDS)")
        if window is not None and (window <= 0 or (stride if stride is not None else window) <= 0):
            raise ValueError(f"window and stride must be positive seconds, got {window} and {stride}")
        self.window = None if window is None else float(window)
        self.stride = None if window is None else float(stride if stride is not None else window)
        span = self.views.num_frames * self.views.sampling_rate / self.views.target_fps
        if self.window is not None and self.window < span:
            logger.warning("a clip spans %.2f s (DATA.NUM_FRAMES x DATA.SAMPLING_RATE / DATA.TARGET_FPS) but a window "
                           "%.2f s: in each window the clip's frames past the window's end repeat its last frame",
                           span, self.window)
        self.all_scores = bool(all_scores)
        self.ensemble_method = cfg.TEST.ENSEMBLE_METHOD
        self.decoder = cfg.DATA.DECODER
        get_decoder(self.decoder)
        self.batch_size = int(batch_size or cfg.TEST.BATCH_SIZE)
        self.num_workers = int(cfg.DATA_LOADER.NUM_WORKERS if num_workers is None else num_workers)
        if self.batch_size < 1 or self.num_workers < 0:
            raise ValueError(f"need a batch size >= 1 and workers >= 0, got {self.batch_size} and {self.num_workers}")
        self.visualize = None if visualize is None else os.fspath(visualize)
        if self.visualize is not None and getattr(self.model, "ats", None) is None:
            raise ValueError("--visualize shows the tokens ATS keeps, but the model has no ATS stages "
                             "(add ATS.ENABLE True)")
        self.device = resolve_device(device or cfg.DEVICE)
        self.autocast_dtype = autocast_dtype(cfg, self.device)
        self.model.to(self.device).eval()
        ats = getattr(self.model, "ats", None)
        self.ats_blocks = [] if ats is None else [int(block) for block in ats.blocks]
        self.stats = PredictionStats()

    # -- construction ---------------------------------------------------------------------------

    @staticmethod
    def _model_from_cfg(cfg: CfgNode, checkpoint, random_weights: bool):
        seed_everything(cfg.SEED)
        model = build_model_from_cfg(cfg)
        if random_weights:
            if checkpoint is not None:
                raise ValueError("random weights and a checkpoint exclude each other")
            return model, None
        checkpoint = checkpoint if checkpoint is not None else checkpoint_to_test(cfg)
        if isinstance(checkpoint, (str, os.PathLike)) and not os.path.exists(checkpoint):
            raise ValueError(f"checkpoint {os.fspath(checkpoint)} does not exist")
        load_checkpoint(model, checkpoint, source=cfg.MODEL.PRETRAINED_SOURCE)
        return model, _file_name(checkpoint)

    @staticmethod
    def _default_cfg(model) -> CfgNode:
        """The default test views for a model given without a config, normalised as its preset
        expects (``model.pretrained_cfg``, set by `build_model`)."""
        expected = getattr(model, "pretrained_cfg", None)
        if expected is None:
            raise ValueError("the model does not say how its input is normalised (no pretrained_cfg: it was not made "
                             "by video_ats.build_model); pass a config with DATA.MEAN and DATA.STD")
        cfg = get_cfg()
        cfg.DATA.NUM_FRAMES = int(model.num_frames)
        cfg.DATA.TEST_CROP_SIZE = int(model.img_size)
        cfg.DATA.MEAN, cfg.DATA.STD = list(expected["mean"]), list(expected["std"])
        return cfg

    def _class_names(self, names, cfg: CfgNode) -> Optional[List[str]]:
        if names is None:
            names, source = cfg_class_names(cfg), f"DATA.CLASS_LIST {cfg.DATA.CLASS_LIST!r}"
        else:
            source = f"the class list {names!r}" if isinstance(names, (str, os.PathLike)) else "the class list given"
            try:
                names = load_class_list(names)
            except FileNotFoundError as error:
                raise ValueError(str(error)) from None
        if names is not None and len(names) != self.num_classes:
            raise ValueError(f"{source} has {len(names)} classes but the model has {self.num_classes}")
        return names

    def _check_views(self) -> None:
        size, frames = int(self.model.img_size), int(self.model.num_frames)
        if self.views.crop_size != size:
            raise ValueError(f"DATA.TEST_CROP_SIZE {self.views.crop_size} is not the model's image size {size}")
        if self.views.num_frames != frames:
            raise ValueError(f"DATA.NUM_FRAMES {self.views.num_frames} is not the model's {frames} frames")

    # -- what defines the records ---------------------------------------------------------------

    def settings(self) -> dict:
        """Everything that decides the records (not batch size, workers, device, nor where the
        checkpoint lies): two runs with equal settings write the same records.
        ``weights_sha256`` hashes the weights."""
        ats = getattr(self.model, "ats", None)
        names = self.class_names
        return {
            "model": self.cfg.MODEL.NAME if self.from_config else None, "model_class": type(self.model).__name__,
            "num_classes": self.num_classes,
            "model_overrides": model_overrides(self.cfg), "ats": None if ats is None else ats.to_dict(),
            "weights_sha256": weights_sha256(self.model),
            "class_names_sha256": None if names is None else hashlib.sha256("\n".join(names).encode()).hexdigest(),
            "decoder": self.decoder, "views": asdict(self.views),
            "ensemble_method": self.ensemble_method, "window": self.window, "stride": self.stride,
            "top_k": self.top_k, "all_scores": self.all_scores, "visualize": self.visualize is not None,
        }

    # -- prediction ------------------------------------------------------------------------------

    def predict(self, inputs, *, skip: Iterable[str] = (), progress: bool = False) -> Iterator[dict]:
        """One record per video of ``inputs`` (see `expand_inputs`), as videos finish.

        skip: absolute paths not to predict (those already in an output file).
        Records (docs/predict.md): path, window (None), top_k [{index, name, prob}], gflops
        (the video's views summed), views, kept_tokens [{block, tokens, positions}] (means over
        the views), frames, fps, duration, seconds {decode, model}, error (None), and with a
        window ``windows`` (per window: index, start, end, top_k, gflops, views, kept_tokens);
        ``scores`` with all_scores, ``visualization`` with visualize. A video that cannot be
        read: path, window None, error (the reason). ``self.stats`` sums up the run.
        """
        paths, problems = expand_inputs(inputs)
        skip = {os.path.abspath(path) for path in skip}
        paths = [path for path in paths if path not in skip]
        problems = [(item, reason) for item, reason in problems if os.path.abspath(item) not in skip]
        self.stats = stats = PredictionStats()
        start = time.perf_counter()
        bar = progress_bar(total=len(paths) + len(problems), unit="video", enabled=progress, dynamic_ncols=True,
                           smoothing=0.05)
        try:
            for item, reason in problems:
                stats.failed += 1
                bar.update(1)
                yield self._failure(item, reason)
            for record in self._predict_paths(paths, stats):
                stats.failed += record["error"] is not None
                stats.videos += record["error"] is None
                bar.update(1)
                bar.set_postfix(failed=stats.failed, refresh=False)
                yield record
        finally:
            bar.close()
            stats.wall_seconds = time.perf_counter() - start

    def _predict_paths(self, paths: List[str], stats: PredictionStats) -> Iterator[dict]:
        if not paths:
            return
        stream = VideoViewStream(paths, self.views, self.decoder, self.window, self.stride)
        loader = DataLoader(stream, batch_size=None, num_workers=min(self.num_workers, len(paths)),
                            collate_fn=_identity)
        videos: Dict[int, _Video] = {}
        queue: deque = deque()              # [video, window, first view not yet run, views]
        queued = 0
        iterator = iter(loader)
        while True:
            waited = time.perf_counter()
            item = next(iterator, None)
            stats.wait_seconds += time.perf_counter() - waited
            if item is not None:
                video = videos.setdefault(item["video_index"], _Video(item["video_index"], item["path"]))
                if not item["ok"]:
                    video.error = item["reason"]
                    queued -= sum(len(entry[3]) - entry[2] for entry in queue if entry[0] is video)
                    queue = deque(entry for entry in queue if entry[0] is not video)
                else:
                    window = self._add_window(video, item)
                    stats.decode_seconds += item["decode_seconds"]
                    queue.append([video, window, 0, item["views"]])
                    queued += len(item["views"])
            while queued >= self.batch_size or (item is None and queued):
                queued -= self._run_batch(queue, min(queued, self.batch_size), stats)
            for index in sorted(i for i, video in videos.items() if video.finished):
                yield self._record(videos.pop(index))
            if item is None:
                return

    def _add_window(self, video: _Video, item: dict) -> _Window:
        video.num_windows, video.num_frames, video.fps = item["num_windows"], item["num_frames"], item["fps"]
        video.decode_seconds += item["decode_seconds"]
        count = len(item["views"])
        window = _Window(item["window_index"], tuple(item["frame_range"]), [None] * count, [0.0] * count,
                         [None] * count)
        video.windows.append(window)
        video.pending_views += count
        return window

    def _run_batch(self, queue: deque, size: int, stats: PredictionStats) -> int:
        """Forward the first ``size`` queued views; returns ``size``."""
        parts, taken = [], 0
        while taken < size:
            entry = queue[0]
            video, window, first, views = entry
            count = min(len(views) - first, size - taken)
            parts.append((video, window, first, views[first:first + count]))
            taken += count
            entry[2] += count
            if entry[2] == len(views):
                queue.popleft()
        outputs = forward_views(self.model, torch.cat([part[3] for part in parts]), self.device, self.autocast_dtype)
        stats.model_seconds += outputs.seconds
        stats.views += size
        row = 0
        for video, window, first, views in parts:
            for offset in range(len(views)):
                view = first + offset
                window.logits[view] = outputs.logits[row]
                window.gflops[view] = float(outputs.gflops[row])
                if outputs.kept is not None:
                    window.kept[view] = torch.stack([outputs.kept[:, row], outputs.positions[:, row]], dim=1)
                if self.visualize is not None and window.index == 0 and view == self.views.num_crops // 2:
                    video.visualization = self._save_overlay(video, views[offset], row)
                row += 1
            video.pending_views -= len(views)
            video.model_seconds += outputs.seconds * len(views) / size
        return size

    def _save_overlay(self, video: _Video, view: torch.Tensor, row: int) -> str:
        model = self.model
        stages = viz.stage_tokens(model.ats_stats, viz.model_grid(model), int(model.num_frames), clip=row)
        frames = viz.denormalize(view, self.views.mean, self.views.std)
        stem = os.path.splitext(os.path.basename(video.path))[0]
        tag = hashlib.sha1(video.path.encode()).hexdigest()[:8]   # videos of the same name in other folders
        path = os.path.join(self.visualize, f"{stem}_{tag}_tokens.png")
        return os.path.abspath(viz.save_png(viz.frame_grid(frames, stages, int(model.patch_size)), path))

    # -- records ---------------------------------------------------------------------------------

    @staticmethod
    def _failure(path: str, reason: str) -> dict:
        return {"path": os.path.abspath(path), "window": None, "error": reason}

    def _summary(self, logits: List[torch.Tensor], gflops: List[float], kept: List[Optional[torch.Tensor]]) -> dict:
        """top_k, scores, gflops, views and kept_tokens of a set of views of one video."""
        stacked = torch.stack(logits)
        scores = aggregate_views(stacked, torch.zeros(len(stacked), dtype=torch.long),
                                 torch.ones(len(stacked), dtype=torch.bool), method=self.ensemble_method).scores[0]
        probabilities = scores if self.ensemble_method == "mean_softmax" else scores.double().softmax(dim=0)
        top = probabilities.topk(self.top_k)
        out = {"top_k": [{"index": int(index), "name": None if self.class_names is None else self.class_names[index],
                          "prob": float(probabilities[index])} for index in top.indices.tolist()]}
        if self.all_scores:
            out["scores"] = [float(value) for value in scores.tolist()]
        out["gflops"] = float(sum(gflops))
        out["views"] = len(logits)
        out["kept_tokens"] = []
        if kept and kept[0] is not None:
            means = torch.stack(kept).mean(dim=0)                  # (stages, [tokens, positions])
            out["kept_tokens"] = [{"block": block, "tokens": float(means[stage, 0]),
                                   "positions": float(means[stage, 1])} for stage, block in enumerate(self.ats_blocks)]
        return out

    def _record(self, video: _Video) -> dict:
        if video.error is not None:
            return self._failure(video.path, video.error)
        windows = sorted(video.windows, key=lambda window: window.index)
        every = {name: [value for window in windows for value in getattr(window, name)]
                 for name in ("logits", "gflops", "kept")}
        record = {"path": video.path, "window": None, **self._summary(every["logits"], every["gflops"], every["kept"]),
                  "frames": video.num_frames, "fps": video.fps, "duration": video.num_frames / video.fps,
                  "seconds": {"decode": video.decode_seconds, "model": video.model_seconds}, "error": None}
        if self.window is not None:
            record["windows"] = [{"index": window.index, "start": window.frame_range[0] / video.fps,
                                  "end": window.frame_range[1] / video.fps,
                                  **self._summary(window.logits, window.gflops, window.kept)} for window in windows]
        if self.visualize is not None:
            record["visualization"] = video.visualization
        return record


def _file_name(checkpoint) -> Optional[str]:
    """The absolute path of a checkpoint given as a path; None for a state dict."""
    return os.path.abspath(os.fspath(checkpoint)) if isinstance(checkpoint, (str, os.PathLike)) else None


def weights_sha256(model: torch.nn.Module) -> str:
    """SHA-256 over the model's state dict (names, dtypes, shapes and bytes, in key order)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
