"""Human-readable summaries of results."""

from __future__ import annotations


def format_results(results: dict) -> str:
    """A few lines: accuracy, videos (and failures), GFLOPs per view / video, speed, kept tokens."""
    lines = [
        f"top-1 {results['top1']:.2f}  top-5 {results['top5']:.2f}  mean class acc {results['mean_class_acc']:.2f}",
        f"videos {results['num_videos']} evaluated, {results['num_failed_videos']} failed and excluded, "
        f"{results['views_per_video']} views per video",
        f"GFLOPs per view {results['gflops_per_view_mean']:.3f}  per video {results['gflops_per_video_mean']:.3f}",
        f"clips/s {results['clips_per_second']:.1f} (model), {results['wall_clips_per_second']:.1f} (with loading)",
    ]
    for stage in results.get("kept_tokens_per_stage", []):
        lines.append(f"ATS block {stage['block']}: mean kept tokens {stage['mean_kept_tokens']:.1f} "
                     f"({stage['mean_kept_positions']:.1f} positions)")
    return "\n".join(lines)
