"""The model zoo (zoo/, docs/zoo.md): each shipped checkpoint is the file its manifest entry
names, loads into a float32 model, and still scores its recorded top-1 (1x3 views, no ATS) on
the check subset, which is written again here from the dataset's seed. A change to the models,
the data pipeline or the generator that silently breaks the zoo fails here."""

import pytest
import torch

from experiments.zoo import (ROOT, ZOO_TABLE_MARKERS, evaluate_checkpoint, read_manifest, sha256, write_check_subset,
                             zoo_table)
from video_ats.checkpoint import build_model_from_checkpoint, read_checkpoint_file
from video_ats.data.synthetic import GENERATOR_VERSION

MANIFEST = read_manifest()
ENTRIES = {entry["name"]: entry for entry in MANIFEST["models"]}
TOLERANCE = 2.0   # points of top-1, as issue #13 asks


@pytest.fixture(scope="module")
def check_subset(tmp_path_factory):
    return write_check_subset(MANIFEST, tmp_path_factory.mktemp("zoo_check") / "data")


def test_the_zoo_holds_both_backbones_for_three_seeds_made_by_the_train_tool():
    assert sorted((entry["model"], entry["seed"]) for entry in ENTRIES.values()) == [
        (model, seed) for model in ("timesformer_tiny", "xvit_tiny") for seed in (0, 1, 2)]
    for entry in ENTRIES.values():
        assert entry["file"] == f"zoo/{entry['model']}_seed{entry['seed']}.pt"
        assert entry["command"].endswith(f"python tools/train.py --cfg {entry['config']} --no-progress "
                                         f"SEED {entry['seed']} OUTPUT_DIR runs/zoo/{entry['name']}")
        assert (ROOT / entry["config"]).is_file()


def test_the_zoo_was_trained_on_the_data_this_generator_writes():
    assert MANIFEST["dataset"]["generator_version"] == GENERATOR_VERSION, \
        "the generator changed since the zoo was trained: run `make zoo`"


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_a_checkpoint_is_the_file_its_entry_names_fp16_and_under_10_mb(name):
    entry = ENTRIES[name]
    path = ROOT / entry["file"]
    assert sha256(path) == entry["sha256"]
    assert path.stat().st_size <= 10 * 2**20
    stored = read_checkpoint_file(path)["model"]
    assert {value.dtype for value in stored.values() if value.is_floating_point()} == {torch.float16}


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_a_checkpoint_loads_into_a_float32_model(name):
    model = build_model_from_checkpoint(ROOT / ENTRIES[name]["file"])
    assert model.num_classes == len(MANIFEST["dataset"]["arguments"]["classes"])
    assert {parameter.dtype for parameter in model.parameters()} == {torch.float32}


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_a_checkpoint_still_scores_its_recorded_top1_on_the_check_subset(name, check_subset, tmp_path, viz_one_thread):
    entry = ENTRIES[name]
    result = evaluate_checkpoint(entry["config"], ROOT / entry["file"], check_subset, tmp_path)
    assert result["num_videos"] == MANIFEST["check_subset"]["num_videos"] and result["views_per_video"] == 3
    assert abs(result["top1"] - entry["check_top1"]) <= TOLERANCE, (result["top1"], entry["check_top1"])


def test_the_zoo_page_shows_this_manifest():
    start, end = ZOO_TABLE_MARKERS
    assert f"{start}\n{zoo_table(MANIFEST)}\n{end}" in (ROOT / "docs" / "zoo.md").read_text()

