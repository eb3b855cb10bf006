"""The demo end to end, shrunk (a few clips, a narrow model, one epoch)."""

import json

from experiments.demo import format_table, run_demo


def test_the_demo_trains_tests_three_settings_and_writes_its_table(tmp_path):
    data = dict(classes=("spin", "stay still"), videos_per_class={"train": 4, "val": 2}, num_frames=16,
                height=48, width=64, fps=8, clutter_levels=(0, 2), seed=3)
    small = ["MODEL.EMBED_DIM", "32", "MODEL.NUM_HEADS", "2", "SOLVER.MAX_EPOCH", "1", "TRAIN.BATCH_SIZE", "4",
             "TEST.BATCH_SIZE", "6", "DATA_LOADER.NUM_WORKERS", "0", "DATA.SAMPLING_RATE", "2"]
    summary = run_demo(str(tmp_path / "data"), str(tmp_path / "runs"), progress=False, extra_overrides=small,
                       data=data)

    rows = {row["setting"]: row for row in summary["rows"]}
    assert list(rows) == ["no ATS", "ATS off-the-shelf", "ATS fine-tuned"]
    for row in rows.values():
        assert row["num_videos"] == 4 and row["views_per_video"] == 3
        assert 0.0 <= row["top1"] <= 100.0 and row["clips_per_second"] > 0
    assert rows["no ATS"]["kept_tokens"] == []
    for name in ("ATS off-the-shelf", "ATS fine-tuned"):
        assert rows[name]["gflops_per_view"] < rows["no ATS"]["gflops_per_view"]
        assert len(rows[name]["kept_tokens"]) == 3
        # ratio 0.5 of 36 positions x 8 frames: at most 18 positions (144 tokens) after block 3
        assert 0 < rows[name]["kept_tokens"][0] <= 144
    assert "all (288 per block)" in summary["table"]
    written = json.loads((tmp_path / "runs" / "demo_results.json").read_text())
    assert written["table"] == summary["table"] and (tmp_path / "runs" / "ats_finetune").is_dir()


def test_the_table_states_each_setting_against_the_model_without_ats():
    rows = [dict(setting="no ATS", top1=50.0, top5=100.0, gflops_per_view=0.4, clips_per_second=10.0, kept_tokens=[],
                 num_videos=2, views_per_video=3),
            dict(setting="ATS", top1=40.0, top5=100.0, gflops_per_view=0.3, clips_per_second=12.0,
                 kept_tokens=[100.0, 60.0, 50.0], num_videos=2, views_per_video=3)]
    table = format_table(rows, tokens_per_block=288)
    assert "75%" in table and "100, 60, 50" in table and "all (288 per block)" in table
