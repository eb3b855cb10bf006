"""Pictures of what ATS keeps: masks over the frames per stage, and kept tokens over a dataset.

One clip (the paper's figures, supplementary §7: dropped tokens shown as masks over the input):

    frames, video = test_view_of_video("clip.mp4", cfg, model.num_frames)
    model(video[None])
    stages = stage_tokens(model.ats_stats, model_grid(model), model.num_frames)
    save_png(frame_grid(frames, stages, model.patch_size), "clip_tokens.png")
    save_gif(animation_frames(frames, stages, model.patch_size), "clip_tokens.gif", fps=4)

A dataset (the poster's histograms of kept tokens per stage, and kept tokens against the
synthetic dataset's clutter level):

    kept = collect_kept_tokens(model, loader)
    histograms = plot_kept_histograms(kept, "kept_histograms.png")
    by_level = plot_kept_vs_clutter(kept, clutter_of_views(kept, clutter), "kept_vs_clutter.png")

Every plotting function returns the numbers it drew, so studies and tests can use them
without reading images. Axis names: B clips, S ATS stages, T frames, gh x gw the patch grid
(row-major: position p is row p // gw, column p % gw), P' kept position slots.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from ..data import VideoDecodeError, get_decoder, test_clip_indices
from ..data.synthetic import write_mp4
from ..data.transforms import test_transform
from .distributed import DistContext
from .evaluator import concatenate_views, run_views

# Dropped patches: the gray level of the pixel, pulled this far towards a light gray, so the
# kept patches stand out in colour and the dropped ones still show faintly what they held.
DROPPED_FADE = 0.7
DROPPED_FILL = 215
_BACKGROUND = 255
_TEXT = (20, 20, 20)


# ---------------------------------------------------------------------------------------------
# Masks


def model_grid(model) -> Tuple[int, int]:
    """(gh, gw), the patch grid of a TimeSformer or XViT (square frames)."""
    side = int(model.img_size) // int(model.patch_size)
    return side, side


def kept_masks(ats_stats: Sequence[dict], grid_size: Union[int, Tuple[int, int]], num_frames: int) -> Tensor:
    """Which patches each ATS stage kept, per clip and frame.

    Args:
        ats_stats: ``model.ats_stats`` of one forward (see docs/models.md): per stage
            ``kept_positions`` (B, P') original row-major indices, -1 for padding, and in
            ``frame`` scope (or with padding) ``token_valid`` (B, T, P').
        grid_size: (gh, gw) of the patch grid, or gh when square.
        num_frames: T.
    Returns:
        bool (B, S, T, gh, gw): True where the patch is still present after the stage. The
        masks are nested (a later stage keeps a subset of an earlier one's patches).
    """
    grid_h, grid_w = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    num_positions = grid_h * grid_w
    if not ats_stats:
        raise ValueError("no ATS stages in ats_stats: run a forward of a model built with ATS first")
    masks = []
    for stage in ats_stats:
        positions = stage["kept_positions"].long()                                  # (B, P')
        if positions.numel() and int(positions.max()) >= num_positions:
            raise ValueError(f"block {stage['block']}: kept position {int(positions.max())} is outside a "
                             f"{grid_h}x{grid_w} patch grid")
        valid = (positions >= 0)[:, None, :].expand(-1, num_frames, -1)             # (B, T, P')
        if "token_valid" in stage:
            token_valid = stage["token_valid"]
            if token_valid.shape[1] != num_frames:
                raise ValueError(f"block {stage['block']}: token_valid has {token_valid.shape[1]} frames, "
                                 f"expected {num_frames}")
            valid = valid & token_valid.bool()
        # Padding slots write into an extra column that is cut off afterwards.
        index = positions.masked_fill(positions < 0, num_positions)[:, None, :].expand(-1, num_frames, -1)
        mask = torch.zeros(positions.shape[0], num_frames, num_positions + 1, dtype=torch.bool,
                           device=positions.device)
        mask.scatter_(2, index, valid)
        masks.append(mask[..., :num_positions].reshape(-1, num_frames, grid_h, grid_w))
    return torch.stack(masks, dim=1).cpu()


def masked_frames(frames, mask, patch_size: int, fade: float = DROPPED_FADE, fill: int = DROPPED_FILL) -> np.ndarray:
    """Frames with the dropped patches greyed out (kept patches unchanged).

    Args:
        frames: uint8 (T, H, W, 3), what the model saw before normalisation.
        mask: bool (T, gh, gw), True for kept patches; H = gh * patch_size, W = gw * patch_size.
    Returns:
        uint8 (T, H, W, 3): a dropped pixel becomes ``(1 - fade) * gray + fade * fill``,
        where gray is its luma.
    """
    frames = np.asarray(frames)
    mask = np.asarray(torch.as_tensor(mask).cpu(), dtype=bool)
    if frames.ndim != 4 or frames.shape[-1] != 3 or mask.ndim != 3:
        raise ValueError(f"need frames (T, H, W, 3) and a mask (T, gh, gw), got {frames.shape} and {mask.shape}")
    expected = (mask.shape[0], mask.shape[1] * patch_size, mask.shape[2] * patch_size)
    if frames.shape[:3] != expected:
        raise ValueError(f"frames {frames.shape[:3]} do not match a mask of {mask.shape} with "
                         f"patch size {patch_size} (expected {expected})")
    pixel_kept = mask.repeat(patch_size, axis=1).repeat(patch_size, axis=2)[..., None]   # (T, H, W, 1)
    luma = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    faded = np.rint((1 - fade) * luma + fade * fill).clip(0, 255).astype(np.uint8)[..., None]
    return np.where(pixel_kept, frames, faded).astype(np.uint8)


@dataclass(frozen=True)
class StageTokens:
    """What one ATS stage kept of one clip.

    block: 0-based block index. mask: bool (T, gh, gw), True for kept patches.
    kept: positions kept (the union over frames in ``frame`` scope).
    frame_kept: positions kept in each frame. input_positions: positions before the stage.
    """

    block: int
    mask: Tensor
    kept: int
    frame_kept: Tuple[int, ...]
    input_positions: int

    @property
    def label(self) -> str:
        return f"block {self.block}\nkept {self.kept}/{self.input_positions}"


def stage_tokens(ats_stats: Sequence[dict], grid_size, num_frames: int, clip: int = 0) -> List[StageTokens]:
    """The stages of clip ``clip`` of a forward's ``ats_stats``, with their masks."""
    masks = kept_masks(ats_stats, grid_size, num_frames)[clip]
    return [StageTokens(block=int(stage["block"]), mask=masks[index], kept=int(stage["kept"][clip]),
                        frame_kept=tuple(int(n) for n in stage["frame_kept"][clip].tolist()),
                        input_positions=int(stage["input_positions"][clip]))
            for index, stage in enumerate(ats_stats)]


# ---------------------------------------------------------------------------------------------
# One clip: the test view the model sees, figures, writers


def denormalize(video: Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """A normalised clip (C, T, H, W) back to uint8 RGB frames (T, H, W, 3)."""
    mean_t = torch.as_tensor(mean, dtype=video.dtype).view(-1, 1, 1, 1)
    std_t = torch.as_tensor(std, dtype=video.dtype).view(-1, 1, 1, 1)
    pixels = ((video.cpu() * std_t + mean_t) * 255.0).round().clamp(0, 255).to(torch.uint8)
    return pixels.permute(1, 2, 3, 0).contiguous().numpy()


def test_view_of_video(path: Union[str, os.PathLike], cfg, num_frames: int, clip_index: int = 0):
    """The center-crop test view of a video, as evaluation builds it, and its frames.

    Decoder ``DATA.DECODER``, frame indices from `test_clip_indices` (temporal clip
    ``clip_index`` of ``TEST.NUM_ENSEMBLE_VIEWS``, ``TEST.CLIP_POSITION``), then
    `test_transform` with the center crop of ``DATA.TEST_CROP_SIZE``.

    Returns:
        frames uint8 (T, S, S, 3), the pixels the model sees before normalisation, and
        video float32 (C, T, S, S), the normalised model input.
    Raises:
        ValueError: the video cannot be decoded (names the file and why) or clip_index is out
            of range.
    """

    num_clips = int(cfg.TEST.NUM_ENSEMBLE_VIEWS)
    if not 0 <= clip_index < num_clips:
        raise ValueError(f"clip {clip_index} is not one of the {num_clips} temporal test clips "
                         f"(TEST.NUM_ENSEMBLE_VIEWS)")
    try:
        with get_decoder(cfg.DATA.DECODER)(path) as reader:
            indices = test_clip_indices(reader.num_frames, reader.fps, num_frames, cfg.DATA.SAMPLING_RATE,
                                        cfg.DATA.TARGET_FPS, clip_index, num_clips, cfg.TEST.CLIP_POSITION)
            raw = reader.get_frames(indices)
    except VideoDecodeError as error:
        raise ValueError(str(error)) from None
    video = test_transform(raw, crop_size=cfg.DATA.TEST_CROP_SIZE, spatial_index=0, num_crops=1,
                           mean=tuple(cfg.DATA.MEAN), std=tuple(cfg.DATA.STD))
    return denormalize(video, cfg.DATA.MEAN, cfg.DATA.STD), video


def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _upscale(image: np.ndarray, scale: int) -> np.ndarray:
    return image if scale == 1 else image.repeat(scale, axis=0).repeat(scale, axis=1)


def _label_width(labels: Sequence[str], font) -> int:
    from PIL import Image, ImageDraw

    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    widths = [draw.multiline_textbbox((0, 0), label, font=font)[2] for label in labels]
    return max(widths, default=0) + 12


def _compose(rows: Sequence[Sequence[np.ndarray]], row_labels: Sequence[str], column_labels: Sequence[str],
             scale: int, tile_labels: Optional[Sequence[Sequence[str]]] = None) -> np.ndarray:
    """Tiles (each uint8 (h, w, 3)) in a labelled grid on white: uint8 (H, W, 3)."""
    from PIL import Image, ImageDraw

    tile_h, tile_w = rows[0][0].shape[0] * scale, rows[0][0].shape[1] * scale
    font_size = max(10, min(16, tile_h // 7))
    font = _font(font_size)
    gap, header = 3, font_size + 8
    left = _label_width(row_labels, font)
    columns = max(len(row) for row in rows)
    width = left + columns * (tile_w + gap)
    height = header + len(rows) * (tile_h + gap)
    canvas = Image.new("RGB", (width, height), (_BACKGROUND,) * 3)
    draw = ImageDraw.Draw(canvas)
    small = _font(max(9, font_size - 3))
    for column, text in enumerate(column_labels):
        draw.text((left + column * (tile_w + gap) + tile_w // 2, header // 2), text, fill=_TEXT, font=font,
                  anchor="mm")
    for row, (tiles, text) in enumerate(zip(rows, row_labels)):
        top = header + row * (tile_h + gap)
        draw.multiline_text((6, top + tile_h // 2), text, fill=_TEXT, font=font, anchor="lm", spacing=3)
        for column, tile in enumerate(tiles):
            x = left + column * (tile_w + gap)
            canvas.paste(Image.fromarray(_upscale(tile, scale)), (x, top))
            corner = tile_labels[row][column] if tile_labels else ""
            if corner:
                box = draw.textbbox((x + 2, top + 2), corner, font=small)
                draw.rectangle((box[0] - 1, box[1] - 1, box[2] + 1, box[3] + 1), fill=(0, 0, 0))
                draw.text((x + 2, top + 2), corner, fill=(255, 255, 255), font=small)
    return np.asarray(canvas)


def _frame_counts(stage: StageTokens) -> List[str]:
    """Per-tile kept counts, drawn only when the frames of a stage differ (``frame`` scope)."""
    if len(set(stage.frame_kept)) <= 1:
        return [""] * len(stage.frame_kept)
    return [str(n) for n in stage.frame_kept]


def default_scale(frame_size: int, minimum: int = 112) -> int:
    """Integer upscaling that makes a tile at least ``minimum`` pixels (tiny models' 64 px)."""
    return max(1, math.ceil(minimum / frame_size))


def frame_grid(frames, stages: Sequence[StageTokens], patch_size: int, scale: Optional[int] = None) -> np.ndarray:
    """The paper's figure for one clip: rows = the input, then one row per ATS stage with the
    dropped patches greyed out; columns = frames. Row labels give the block and the positions
    kept out of those present before it; in ``frame`` scope each tile shows its own count.

    Args:
        frames: uint8 (T, H, W, 3). stages: from `stage_tokens`. scale: integer upscaling
            (default `default_scale`).
    Returns:
        uint8 (height, width, 3).
    """
    frames = np.asarray(frames)
    scale = default_scale(frames.shape[1]) if scale is None else int(scale)
    rows = [list(frames)] + [list(masked_frames(frames, stage.mask, patch_size)) for stage in stages]
    labels = ["input"] + [stage.label for stage in stages]
    tile_labels = [[""] * len(frames)] + [_frame_counts(stage) for stage in stages]
    return _compose(rows, labels, [f"t={t}" for t in range(len(frames))], scale, tile_labels)


def animation_frames(frames, stages: Sequence[StageTokens], patch_size: int,
                     scale: Optional[int] = None) -> List[np.ndarray]:
    """One image per clip frame t: the input frame and each stage's masked frame side by side.

    Returns:
        T uint8 images (height, width, 3) of equal size; each carries its frame number, so no
        two are identical (GIF writers merge identical consecutive frames).
    """
    frames = np.asarray(frames)
    scale = default_scale(frames.shape[1]) if scale is None else int(scale)
    masked = [masked_frames(frames, stage.mask, patch_size) for stage in stages]
    columns = ["input"] + [f"block {stage.block}" for stage in stages]
    images = []
    for t in range(len(frames)):
        tiles = [frames[t]] + [m[t] for m in masked]
        counts = [""] + [str(stage.frame_kept[t]) for stage in stages]
        images.append(_compose([tiles], [f"t={t}/{len(frames)}"], columns, scale, [counts]))
    return images


def save_png(image: np.ndarray, path: Union[str, os.PathLike]) -> str:
    """Write a uint8 (H, W, 3) image as PNG; returns the path."""
    from PIL import Image

    _parent(path)
    Image.fromarray(np.asarray(image)).save(path, format="PNG", optimize=True)
    return os.fspath(path)


def save_gif(images: Sequence[np.ndarray], path: Union[str, os.PathLike], fps: float = 4.0) -> str:
    """Write uint8 (H, W, 3) images as an animated GIF looping forever; returns the path."""
    from PIL import Image

    if not images:
        raise ValueError("no images to animate")
    _parent(path)
    pictures = [Image.fromarray(np.asarray(image)) for image in images]
    pictures[0].save(path, format="GIF", save_all=True, append_images=pictures[1:],
                     duration=int(round(1000 / fps)), loop=0, optimize=False, disposal=1)
    return os.fspath(path)


def save_mp4(images: Sequence[np.ndarray], path: Union[str, os.PathLike], fps: float = 4.0) -> str:
    """Write uint8 (H, W, 3) images as H.264 (PyAV); odd sizes are padded white to even."""

    if not images:
        raise ValueError("no images to encode")
    _parent(path)
    height, width = images[0].shape[:2]
    pad = ((0, height % 2), (0, width % 2), (0, 0))
    write_mp4(path, (np.pad(np.asarray(image), pad, constant_values=_BACKGROUND) for image in images), fps, crf=18)
    return os.fspath(path)


def _parent(path) -> None:
    directory = os.path.dirname(os.fspath(path))
    if directory:
        os.makedirs(directory, exist_ok=True)


def clip_summary(stages: Sequence[StageTokens], num_positions: int) -> dict:
    """JSON-able numbers of a clip's stages (what the figure's labels say)."""
    return {"num_positions": int(num_positions),
            "stages": [{"block": s.block, "input_positions": s.input_positions, "kept_positions": s.kept,
                        "kept_per_frame": list(s.frame_kept),
                        "kept_position_indices": [int(p) for p in s.mask.any(dim=0).flatten().nonzero()[:, 0]]}
                       for s in stages]}


# ---------------------------------------------------------------------------------------------
# A dataset: kept tokens per stage, histograms, clutter


@dataclass
class KeptTokens:
    """Kept tokens of every view a model ran (views that failed to decode are left out).

    blocks: the ATS block of each stage. num_positions: patch positions per frame (N).
    num_frames: T. positions: int (V, S) positions kept per view and stage (the histograms'
    numbers; ``model.ats_stats[s]["kept"]``). tokens: int (V, S) tokens kept (positions x
    frames, summed over frames). video_index, view_index: int (V,). gflops: float (V,) per
    view. logits: float (V, classes).
    """

    blocks: List[int]
    num_positions: int
    num_frames: int
    positions: np.ndarray
    tokens: np.ndarray
    video_index: np.ndarray
    view_index: np.ndarray
    gflops: np.ndarray
    logits: np.ndarray

    def to_dict(self) -> dict:
        return {"blocks": list(self.blocks), "num_positions": self.num_positions, "num_frames": self.num_frames,
                "views": {"video_index": self.video_index.tolist(), "view_index": self.view_index.tolist(),
                          "kept_positions": self.positions.tolist(), "kept_tokens": self.tokens.tolist(),
                          "gflops": self.gflops.tolist()}}


@torch.no_grad()
def collect_kept_tokens(model, loader, device: Optional[torch.device] = None, progress: bool = False) -> KeptTokens:
    """Run ``model`` (eval) over every batch of ``loader`` (items as `collate_views` makes
    them) and record the kept tokens of every view.

    Raises ValueError when the model has no ATS stages or no view could be run.
    """

    if getattr(model, "ats", None) is None:
        raise ValueError("the model has no ATS stages (build it with ATS, e.g. ATS.ENABLE True)")
    device = device or next(model.parameters()).device
    views = concatenate_views([run_views(model, loader, DistContext(device=device), progress=progress,
                                         description="kept tokens")])
    ok = views["ok"].astype(bool)
    if not ok.any():
        raise ValueError("no view could be run (every video failed to decode)")
    return KeptTokens(blocks=[int(b) for b in views["blocks"]], num_positions=int(model.patch_embed.num_patches),
                      num_frames=int(model.num_frames),
                      positions=views["positions"][:, ok].T.astype(np.int64),
                      tokens=views["kept"][:, ok].T.astype(np.int64),
                      video_index=views["video_index"][ok].astype(np.int64),
                      view_index=views["view_index"][ok].astype(np.int64),
                      gflops=views["gflops"][ok].astype(np.float64), logits=views["logits"][ok])


def kept_histograms(kept: KeptTokens, bin_width: Optional[int] = None) -> List[dict]:
    """Histogram of the positions kept per view, one per stage.

    Bins are integer-aligned over [0, N]: bin i counts views that kept
    ``edges[i] <= kept < edges[i + 1]``. ``bin_width`` defaults to ceil((N + 1) / 100): one
    bin per count for grids of up to 99 positions (TimeSformer-B's 196: pairs of counts).

    Returns:
        Per stage: block, edges, counts (summing to the views), mean, std, min, median, max.
    """
    width = bin_width or max(1, math.ceil((kept.num_positions + 1) / 100))
    edges = np.arange(0, kept.num_positions + width + 1, width)
    out = []
    for stage, block in enumerate(kept.blocks):
        values = kept.positions[:, stage]
        counts, _ = np.histogram(values, bins=edges)
        out.append({"block": block, "edges": edges.tolist(), "counts": counts.tolist(), **_summary(values)})
    return out


def _summary(values: np.ndarray) -> dict:
    return {"mean": float(values.mean()), "std": float(values.std()), "min": int(values.min()),
            "median": float(np.median(values)), "max": int(values.max())}


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ValueError("the dataset plots need matplotlib: pip install -e '.[viz]'") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _stage_panels(count: int):
    """(pyplot, figure, a row of ``count`` axes sharing y) for one panel per ATS stage."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, count, figsize=(3.2 * count, 2.8), sharey=True, squeeze=False)
    return plt, figure, axes[0]


def _save(plt, figure, path, title: str) -> None:
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    _parent(path)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_kept_histograms(kept: KeptTokens, path: Union[str, os.PathLike], bin_width: Optional[int] = None,
                         title: str = "") -> List[dict]:
    """One histogram panel per ATS stage (the poster's figure): x the positions kept, y the views.

    Returns `kept_histograms` (the numbers drawn).
    """
    histograms = kept_histograms(kept, bin_width)
    plt, figure, axes = _stage_panels(len(histograms))
    for axis, histogram in zip(axes, histograms):
        edges = np.array(histogram["edges"])
        axis.bar(edges[:-1], histogram["counts"], width=np.diff(edges), align="edge", color="#4c72b0",
                 edgecolor="white", linewidth=0.5)
        axis.axvline(histogram["mean"], color="#c44e52", linewidth=1)
        axis.set_title(f"block {histogram['block']}: mean {histogram['mean']:.1f}", fontsize=9)
        axis.set_xlim(0, kept.num_positions + 1)
        axis.set_xlabel(f"positions kept (of {kept.num_positions})", fontsize=8)
        axis.tick_params(labelsize=7)
    axes[0].set_ylabel("views", fontsize=8)
    _save(plt, figure, path, title)
    return histograms


def read_clutter_levels(clips_csv: Union[str, os.PathLike]) -> Dict[str, int]:
    """The synthetic dataset's clips.csv as {real path of the video: clutter level}."""
    root = os.path.dirname(os.path.abspath(clips_csv))
    with open(clips_csv, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if rows and not {"path", "clutter"} <= set(rows[0]):
        raise ValueError(f"{clips_csv}: needs the columns path and clutter (a synthetic dataset's clips.csv)")
    return {os.path.realpath(os.path.join(root, row["path"])): int(row["clutter"]) for row in rows}


def clutter_of_views(kept: KeptTokens, video_paths: Sequence[str], levels: Dict[str, int]) -> np.ndarray:
    """The clutter level of each view's video, -1 where clips.csv does not list it.

    video_paths: path of every video of the dataset (``dataset.records[i].path``), indexed
    by ``kept.video_index``. levels: from `read_clutter_levels`.
    """
    per_video = np.array([levels.get(os.path.realpath(path), -1) for path in video_paths], dtype=np.int64)
    return per_video[kept.video_index]


def kept_by_clutter(kept: KeptTokens, clutter: np.ndarray) -> List[dict]:
    """Positions kept per stage and clutter level (views with level -1 are left out).

    Returns:
        Per stage: block and ``levels``, a list of {level, views, mean, std, median, min, max}
        in increasing level.
    """
    clutter = np.asarray(clutter)
    levels = sorted(int(level) for level in np.unique(clutter) if level >= 0)
    out = []
    for stage, block in enumerate(kept.blocks):
        rows = []
        for level in levels:
            values = kept.positions[clutter == level, stage]
            rows.append({"level": level, "views": int(len(values)), **_summary(values)})
        out.append({"block": block, "levels": rows})
    return out


def plot_kept_vs_clutter(kept: KeptTokens, clutter: np.ndarray, path: Union[str, os.PathLike],
                         title: str = "") -> List[dict]:
    """Box plot of positions kept per clutter level, one panel per ATS stage, means joined
    by a line. Returns `kept_by_clutter` (the numbers drawn)."""
    summary = kept_by_clutter(kept, clutter)
    if not summary or not summary[0]["levels"]:
        raise ValueError("no view has a known clutter level")
    plt, figure, axes = _stage_panels(len(summary))
    clutter = np.asarray(clutter)
    for stage, (axis, stage_summary) in enumerate(zip(axes, summary)):
        levels = [row["level"] for row in stage_summary["levels"]]
        data = [kept.positions[clutter == level, stage] for level in levels]
        axis.boxplot(data, positions=levels, widths=0.5, showfliers=True)
        axis.plot(levels, [row["mean"] for row in stage_summary["levels"]], "o-", color="#c44e52",
                  markersize=4, linewidth=1, label="mean")
        axis.set_title(f"block {stage_summary['block']}", fontsize=9)
        axis.set_xlabel("clutter level", fontsize=8)
        axis.set_xticks(levels)
        axis.tick_params(labelsize=7)
    axes[0].set_ylabel(f"positions kept (of {kept.num_positions})", fontsize=8)
    axes[0].legend(fontsize=7, loc="lower right")
    _save(plt, figure, path, title)
    return summary
