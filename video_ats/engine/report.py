"""Human-readable summaries of results."""

from __future__ import annotations


def format_results(results: dict) -> str:
    """A few lines: accuracy (or "no labels: predictions only" for an unlabelled test set),
    videos (and failures), GFLOPs per view / video, speed, kept tokens."""
    labelled = results.get("num_labelled_videos", results["num_videos"])
    if labelled == 0:
        accuracy = "no labels: predictions only (per-video scores in per_video_scores.npz)"
    else:
        accuracy = (f"top-1 {results['top1']:.2f}  top-5 {results['top5']:.2f}  "
                    f"mean class acc {results['mean_class_acc']:.2f}")
        if labelled < results["num_videos"]:
            accuracy += f"  (over the {labelled} labelled of {results['num_videos']} videos)"
    lines = [
        accuracy,
        f"videos {results['num_videos']} evaluated, {results['num_failed_videos']} failed and excluded, "
        f"{results['views_per_video']} views per video",
        f"GFLOPs per view {results['gflops_per_view_mean']:.3f}  per video {results['gflops_per_video_mean']:.3f}",
        f"clips/s {results['clips_per_second']:.1f} (model), {results['wall_clips_per_second']:.1f} (with loading)",
    ]
    for stage in results.get("kept_tokens_per_stage", []):
        lines.append(f"ATS block {stage['block']}: mean kept tokens {stage['mean_kept_tokens']:.1f} "
                     f"({stage['mean_kept_positions']:.1f} positions)")
    return "\n".join(lines)
