"""Property: whatever happens to a valid annotation file (bytes flipped, lines cut, columns
dropped, rows repeated, labels emptied, the file cut short, another encoding), the dataset,
tools/check_data.py and tools/train.py either work with the right label for every video, or
stop with one line (exit code 2 for the tools). Never a traceback, never a run that starts with
a wrong label.

The valid file is the engine dataset's official-format train.csv (class names, checked against
its classes.txt). Each case draws its corruption from a seeded generator, so a failure names a
reproducible seed. Integer-label lists are not used: a digit changed into another digit is a
valid file with another label, which no reader can tell from the real one.
"""

import csv
from pathlib import Path

import numpy as np
import pytest
from tool_helpers import load_tool

from video_ats.cli import run_tool
from video_ats.config import load_config
from video_ats.data import KineticsDataset

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "synthetic" / "timesformer_tiny.yaml")
DATASET_CASES, CHECK_DATA_CASES, TRAIN_CASES = 80, 16, 30


def flip_bytes(data: bytes, rng) -> bytes:
    data = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        data[int(rng.integers(len(data)))] = int(rng.integers(256))
    return bytes(data)


def cut_a_line(data: bytes, rng) -> bytes:
    lines = data.split(b"\n")
    number = int(rng.integers(len(lines)))
    lines[number] = lines[number][: int(rng.integers(len(lines[number]) + 1))]
    return b"\n".join(lines)


def cut_the_file(data: bytes, rng) -> bytes:
    return data[: int(rng.integers(1, len(data)))]


def drop_a_column(data: bytes, rng) -> bytes:
    rows = [line.split(b",") for line in data.split(b"\n")]
    column = int(rng.integers(len(rows[0])))
    chosen = range(len(rows)) if rng.random() < 0.5 else [int(rng.integers(len(rows)))]   # everywhere or one row
    for number in chosen:
        if column < len(rows[number]) and rows[number] != [b""]:
            del rows[number][column]
    return b"\n".join(b",".join(row) for row in rows)


def change_the_encoding(data: bytes, rng) -> bytes:
    text = data.decode("utf-8", errors="replace")        # after flipped bytes: U+FFFD, re-encodable
    encoding = ["utf-8-sig", "utf-16", "utf-16-le", "utf-32", "latin-1"][int(rng.integers(5))]
    if encoding == "latin-1":                 # ASCII is the same in Latin-1: add a character that is not
        position = int(rng.integers(len(text)))
        text = text[:position] + "\u00e9" + text[position:]
    return text.encode(encoding)


def repeat_a_row(data: bytes, rng) -> bytes:
    lines = data.rstrip(b"\n").split(b"\n")
    lines.insert(int(rng.integers(1, len(lines) + 1)), lines[int(rng.integers(1, len(lines)))])
    return b"\n".join(lines) + b"\n"


def empty_a_label(data: bytes, rng) -> bytes:
    lines = data.rstrip(b"\n").split(b"\n")
    number = int(rng.integers(1, len(lines)))
    lines[number] = b"," + lines[number].split(b",", 1)[1]
    return b"\n".join(lines) + b"\n"


CORRUPTIONS = [flip_bytes, cut_a_line, cut_the_file, drop_a_column, change_the_encoding, repeat_a_row, empty_a_label]


def corrupt(data: bytes, seed: int) -> bytes:
    """One or two corruptions; another encoding, when drawn, comes last (the others edit UTF-8)."""
    rng = np.random.default_rng(seed)
    chosen = [CORRUPTIONS[int(rng.integers(len(CORRUPTIONS)))] for _ in range(int(rng.integers(1, 3)))]
    for corruption in sorted(set(chosen), key=lambda c: (c is change_the_encoding, chosen.index(c))):
        data = corruption(data, rng)
    return data


@pytest.fixture(scope="module")
def truth(engine_dataset):
    """clip file name -> its true class index (from clips.csv, written with the videos)."""
    with open(engine_dataset / "clips.csv", newline="") as handle:
        return {Path(row["path"]).name: int(row["label_index"]) for row in csv.DictReader(handle)}


def wrong_labels(dataset, truth) -> list:
    """Rows whose video exists but whose label is not the video's class."""
    return [(record.line, record.label, truth[Path(record.path).name]) for record in dataset.records
            if Path(record.path).is_file() and record.label != truth[Path(record.path).name]]


def corrupted_copy(engine_dataset, tmp_path, seed, rows=None) -> Path:
    lines = (engine_dataset / "train.csv").read_bytes().splitlines(keepends=True)
    path = tmp_path / "train.csv"
    path.write_bytes(corrupt(b"".join(lines[: rows and rows + 1]), seed))
    return path


@pytest.mark.parametrize("class_list", ["classes.txt", None], ids=["class_list", "names_of_the_file"])
@pytest.mark.parametrize("seed", range(DATASET_CASES))
def test_the_dataset_reads_right_labels_or_raises_one_line(seed, class_list, engine_dataset, truth, tmp_path):
    from conftest import ENGINE_CLASSES

    annotation = corrupted_copy(engine_dataset, tmp_path, seed)
    try:
        dataset = KineticsDataset(annotation, engine_dataset, "train", num_frames=4, sampling_rate=2, crop_size=32,
                                  train_jitter_scales=(32, 40), num_classes=ENGINE_CLASSES,
                                  class_list=class_list and engine_dataset / class_list)
    except ValueError as error:          # AnnotationError and the other input errors
        assert "\n" not in str(error) and str(annotation) in str(error), str(error)
        return
    assert wrong_labels(dataset, truth) == []


@pytest.mark.parametrize("seed", range(CHECK_DATA_CASES))
def test_check_data_reports_or_stops_with_one_line(seed, engine_dataset, tmp_path, capsys):
    annotation = corrupted_copy(engine_dataset, tmp_path, seed, rows=6)
    with pytest.raises(SystemExit) as exit_info:
        run_tool(load_tool("check_data").main, [str(annotation), "--video-root", str(engine_dataset), "--class-list",
                                                str(engine_dataset / "classes.txt"), "--num-classes", "3",
                                                "--split", "train", "--out", str(tmp_path / "problems.tsv")])
    output = capsys.readouterr()
    assert exit_info.value.code in (0, 1, 2)
    if exit_info.value.code == 2:
        assert output.out == "" and output.err.count("\n") == 1 and output.err.startswith("error: "), output.err
    else:
        assert output.out.startswith("checked "), output.out


def test_the_train_cases_hold_runs_that_start_and_runs_that_stop(engine_dataset, tmp_path):
    # Not vacuous: some corrupted files are still valid (the run must start, with right labels).
    from conftest import ENGINE_CLASSES

    outcomes = []
    for seed in range(TRAIN_CASES):
        annotation = corrupted_copy(engine_dataset, tmp_path, seed, rows=6)
        try:
            KineticsDataset(annotation, engine_dataset, "train", num_frames=4, sampling_rate=2, crop_size=32,
                            train_jitter_scales=(32, 40), num_classes=ENGINE_CLASSES,
                            class_list=engine_dataset / "classes.txt")
            outcomes.append("valid")
        except ValueError:
            outcomes.append("invalid")
    assert outcomes.count("valid") >= 2 and outcomes.count("invalid") >= 2, outcomes


@pytest.mark.parametrize("seed", range(TRAIN_CASES))
def test_train_starts_only_with_right_labels_or_stops_with_one_line(seed, engine_dataset, engine_overrides, truth,
                                                                    tmp_path, monkeypatch, capsys):
    import video_ats.engine.trainer as trainer

    built = []

    def recording_build_dataset(*args, **kwargs):
        built.append(real_build_dataset(*args, **kwargs))
        return built[-1]

    real_build_dataset = trainer.build_dataset
    monkeypatch.setattr(trainer, "build_dataset", recording_build_dataset)
    annotation = corrupted_copy(engine_dataset, tmp_path, seed, rows=6)
    argv = ["--no-progress", "--cfg", CONFIG, *engine_overrides, "DATA.TRAIN_ANNOTATION", str(annotation),
            "SOLVER.MAX_EPOCH", "1", "TRAIN.BATCH_SIZE", "2", "TRAIN.EVAL_PERIOD", "0"]
    assert load_config(CONFIG, argv[3:]).DATA.CLASS_LIST == "classes.txt"
    with pytest.raises(SystemExit) as exit_info:
        run_tool(load_tool("train").main, argv)
    output = capsys.readouterr()
    assert "Traceback" not in output.err
    if exit_info.value.code == 2:
        errors = [line for line in output.err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and output.err.rstrip("\n").endswith(errors[0]), output.err
    else:
        assert exit_info.value.code == 0, output.err
        assert built and all(wrong_labels(dataset, truth) == [] for dataset in built)
