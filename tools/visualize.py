#!/usr/bin/env python3
"""What ATS keeps: per stage, a video's frames with the dropped tokens greyed out (PNG grid and
GIF/MP4), or over a dataset, histograms of kept tokens per stage and kept tokens per clutter
level (synthetic data). See docs/visualization.md.

    python tools/visualize.py --cfg configs/kinetics400/timesformer_base_ats.yaml --video clip.mp4 \
        --out viz TEST.CHECKPOINT_FILE TimeSformer_divST_8x32_224_K400.pyth
    python tools/visualize.py --cfg configs/synthetic/timesformer_tiny.yaml --dataset --max-videos 48 \
        --out viz ATS.ENABLE True ATS.RATIO 0.7

Options come before the KEY VALUE overrides. The weights: TEST.CHECKPOINT_FILE, else the newest
checkpoint in OUTPUT_DIR, else MODEL.PRETRAINED (as tools/test.py); --random-weights loads none.
"""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from video_ats.engine import visualization as viz  # noqa: E402
from video_ats.cli import config_from_args, config_parser, run_tool  # noqa: E402
from video_ats.engine.builders import build_dataset, build_loader, video_subset  # noqa: E402
from video_ats.engine.distributed import resolve_device  # noqa: E402
from video_ats.engine.tester import model_to_test, write_json  # noqa: E402


def parse_args(argv):
    parser = config_parser(__doc__.strip().splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", metavar="PATH", help="one video: PNG grid and animation of its kept tokens")
    source.add_argument("--dataset", action="store_true", help="the config's test (or --split) set: histograms")
    parser.add_argument("--out", metavar="DIR", default=None, help="output folder (default OUTPUT_DIR/visualize)")
    parser.add_argument("--random-weights", action="store_true",
                        help="load no checkpoint: the seeded random initialisation (to try the tool)")
    parser.add_argument("--clip", type=int, default=0, help="--video: temporal test clip (of TEST.NUM_ENSEMBLE_VIEWS)")
    parser.add_argument("--animation", choices=["gif", "mp4", "both", "none"], default="gif",
                        help="--video: animated output (default gif)")
    parser.add_argument("--fps", type=float, default=4.0, help="--video: animation frames per second")
    parser.add_argument("--scale", type=int, default=None, help="--video: integer upscaling of the frames")
    parser.add_argument("--split", choices=["test", "val"], default="test",
                        help="--dataset: test = TEST_ANNOTATION, every test view; val = VAL_ANNOTATION, one view")
    parser.add_argument("--max-videos", type=int, default=None,
                        help="--dataset: at most N videos, drawn at random (seed SEED)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    cfg = config_from_args(args)
    out = args.out or os.path.join(cfg.OUTPUT_DIR, "visualize")
    model, checkpoint, _ = model_to_test(cfg, random_weights=args.random_weights)
    if model.ats is None:
        raise ValueError("the model has no ATS stages to show; add ATS.ENABLE True (and ATS.RATIO ...)")
    device = resolve_device(cfg.DEVICE)
    model.to(device).eval()
    weights = checkpoint or "random weights (--random-weights)"
    print(f"model {cfg.MODEL.NAME} with ATS {model.ats.to_dict()}, weights: {weights}", file=sys.stderr)
    if args.video:
        return visualize_video(args, cfg, model, device, out)
    return visualize_dataset(args, cfg, model, device, out, weights)


def visualize_video(args, cfg, model, device, out: str) -> int:
    frames, video = viz.test_view_of_video(args.video, cfg, model.num_frames, args.clip)
    with torch.no_grad():
        model(video[None].to(device))
    stages = viz.stage_tokens(model.ats_stats, viz.model_grid(model), model.num_frames)
    stem = os.path.join(out, os.path.splitext(os.path.basename(args.video))[0] + "_tokens")
    written = [viz.save_png(viz.frame_grid(frames, stages, model.patch_size, args.scale), stem + ".png")]
    if args.animation != "none":
        images = viz.animation_frames(frames, stages, model.patch_size, args.scale)
        if args.animation in ("gif", "both"):
            written.append(viz.save_gif(images, stem + ".gif", args.fps))
        if args.animation in ("mp4", "both"):
            written.append(viz.save_mp4(images, stem + ".mp4", args.fps))
    summary = {"video": os.path.abspath(args.video), "clip": args.clip,
               **viz.clip_summary(stages, model.patch_embed.num_patches)}
    write_json(stem + ".json", summary)
    written.append(stem + ".json")
    for stage in stages:
        print(f"block {stage.block}: kept {stage.kept} of {stage.input_positions} positions")
    print("\n".join(f"wrote {path}" for path in written))
    return 0


def visualize_dataset(args, cfg, model, device, out: str, weights: str) -> int:
    dataset = build_dataset(cfg, args.split)
    subset = video_subset(dataset, args.max_videos, cfg.SEED)
    loader = build_loader(cfg, subset, None, cfg.TEST.BATCH_SIZE)
    kept = viz.collect_kept_tokens(model, loader, device, progress=not args.no_progress)
    title = f"{cfg.MODEL.NAME}, ATS ratio {model.ats.ratio:g}, {len(kept.video_index)} views"
    histograms = viz.plot_kept_histograms(kept, os.path.join(out, "kept_histograms.png"), title=title)
    written = [os.path.join(out, "kept_histograms.png")]
    clutter = None
    clips_csv = os.path.join(cfg.DATA.PATH_TO_DATA_DIR or ".", "clips.csv")
    if os.path.isfile(clips_csv):
        levels = viz.read_clutter_levels(clips_csv)
        per_view = viz.clutter_of_views(kept, [record.path for record in dataset.records], levels)
        if (per_view >= 0).any():
            clutter = viz.plot_kept_vs_clutter(kept, per_view, os.path.join(out, "kept_vs_clutter.png"), title=title)
            written.append(os.path.join(out, "kept_vs_clutter.png"))
    report = {"model": cfg.MODEL.NAME, "weights": weights, "ats": model.ats.to_dict(),
              "annotation_file": dataset.annotation_file, "split": args.split,
              "num_videos": len(set(kept.video_index.tolist())), "num_views": len(kept.video_index),
              "histograms": histograms, "kept_by_clutter": clutter, **kept.to_dict(),
              "video_paths": [dataset.records[i].path for i in kept.video_index.tolist()]}
    write_json(os.path.join(out, "kept_tokens.json"), report)
    written.append(os.path.join(out, "kept_tokens.json"))
    for histogram in histograms:
        print(f"block {histogram['block']}: positions kept mean {histogram['mean']:.2f} (min {histogram['min']}, "
              f"median {histogram['median']:g}, max {histogram['max']}) of {kept.num_positions}")
    if clutter:
        for stage in clutter:
            means = ", ".join(f"level {row['level']}: {row['mean']:.2f}" for row in stage["levels"])
            print(f"block {stage['block']} by clutter: {means}")
    print("\n".join(f"wrote {path}" for path in written))
    return 0


if __name__ == "__main__":
    run_tool(main)
