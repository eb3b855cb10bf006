"""Command-line tools: check_data, make_synthetic, benchmark_data."""

import json
from pathlib import Path

import pytest
from tool_helpers import load_tool

from video_ats.data.annotations import read_annotations
from video_ats.data.check import check_videos

BROKEN = ["truncated", "random_bytes", "zero_length", "missing", "no_video_stream", "truncated_faststart"]


@pytest.fixture()
def mixed_list(tmp_path, data_index_videos, data_broken_videos):
    paths = [data_index_videos["landscape"]] + [data_broken_videos[k] for k in BROKEN] + [data_index_videos["fps15"]]
    listing = tmp_path / "mixed.txt"
    listing.write_text("".join(f"{path} 0\n" for path in paths))
    return listing


@pytest.mark.parametrize("name", ["check_data", "make_synthetic", "benchmark_data"])
def test_every_tool_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_tool(name).main(["--help"])
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_check_data_lists_missing_and_undecodable_videos_and_fails(mixed_list, tmp_path, capsys):
    out = tmp_path / "bad.tsv"
    code = load_tool("check_data").main([str(mixed_list), "--out", str(out)])
    assert code == 1
    assert capsys.readouterr().out.startswith("checked 8 videos: 1 missing, 5 undecodable, 2 ok")
    lines = out.read_text().splitlines()
    assert lines[0] == "line\tkind\tpath\treason"
    rows = [line.split("\t") for line in lines[1:]]
    assert [row[0] for row in rows] == ["2", "3", "4", "5", "6", "7"]
    assert [row[1] for row in rows] == ["undecodable"] * 3 + ["missing"] + ["undecodable"] * 2
    assert rows[2][3] == "empty file (0 bytes)" and rows[4][3] == "no video stream"
    assert all(Path(row[2]).name == f"{kind}.mp4" for row, kind in zip(rows, BROKEN))


def test_check_data_passes_a_clean_list(tmp_path, data_index_videos, capsys):
    listing = tmp_path / "clean.txt"
    listing.write_text(f"{data_index_videos['landscape']} 0\n{data_index_videos['mkv']} 1\n")
    out = tmp_path / "bad.tsv"
    assert load_tool("check_data").main([str(listing), "--out", str(out), "--decoder", "pyav"]) == 0
    assert "checked 2 videos: 0 missing, 0 undecodable, 2 ok" in capsys.readouterr().out
    assert out.read_text() == "line\tkind\tpath\treason\n"


def test_check_in_worker_processes_finds_the_same_problems(mixed_list):
    records = read_annotations(mixed_list).records
    assert check_videos(records, num_workers=2) == check_videos(records, num_workers=0)


def test_make_synthetic_writes_then_reuses(tmp_path, capsys):
    tool = load_tool("make_synthetic")
    args = [str(tmp_path / "s"), "--num-classes", "2", "--train", "1", "--val", "1", "--num-frames", "8",
            "--height", "32", "--width", "48"]
    assert tool.main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert tool.main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert (first["generated"], second["generated"]) == (True, False)
    assert first["classes"] == ["move back and forth", "stay still"]  # the first two actions, sorted
    assert Path(first["annotations"]["val"]).name == "validate.csv"


def test_benchmark_prints_a_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = load_tool("benchmark_data").main([
        "--data-root", str(tmp_path / "data"), "--synthetic-size", "16", "48", "64", "10",
        "--synthetic-clips", "1", "--num-frames", "4", "--sampling-rate", "2", "--crop-size", "32",
        "--jitter", "32", "40", "--items", "3", "--repeats", "1", "--json", str(out),
    ])
    assert code == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0] == "| decoder | mode | clips | repeats | clips/s (median) |"
    rows = json.loads(out.read_text())["rows"]
    assert [(row["decoder"], row["mode"]) for row in rows] == [
        ("decord", "train"), ("decord", "test"), ("pyav", "train"), ("pyav", "test")
    ]
    assert all(row["items"] == 3 and row["clips_per_s"] > 0 for row in rows)
