"""The one config source: defaults, YAML overrides, command-line overrides, clear errors."""

import re
from pathlib import Path

import pytest

from video_ats.ats import SAMPLERS, SCOPES, SCORES
from video_ats.config import ats_options, build_model_from_cfg, get_cfg, load_config, model_overrides, save_config
from video_ats.data import AGGREGATIONS
from video_ats.data.decoders import DECODER_NAMES
from video_ats.data.sampling import CLIP_POSITIONS
from video_ats.models import get_preset, list_models

CONFIGS = Path(__file__).parents[1] / "configs"


def write(path, text):
    path.write_text(text)
    return str(path)


def test_yaml_then_command_line_override_the_defaults(tmp_path):
    path = write(tmp_path / "a.yaml", "MODEL:\n  NAME: xvit_tiny\nTRAIN:\n  BATCH_SIZE: 3\n")
    cfg = load_config(path, ["TRAIN.BATCH_SIZE", "5", "ATS.ENABLE", "True"])
    assert cfg.MODEL.NAME == "xvit_tiny" and cfg.TRAIN.BATCH_SIZE == 5 and cfg.ATS.ENABLE
    assert cfg.SOLVER.MOMENTUM == get_cfg().SOLVER.MOMENTUM


def test_unknown_key_in_a_yaml_names_the_file_and_the_key(tmp_path):
    path = write(tmp_path / "bad.yaml", "TRAIN:\n  BATCH_SIZ: 3\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*TRAIN\.BATCH_SIZ"):
        load_config(path)


def test_unparsable_yaml_names_the_file(tmp_path):
    path = write(tmp_path / "broken.yaml", "TRAIN: [1, 2\n")
    with pytest.raises(ValueError, match=r"broken\.yaml is not valid YAML"):
        load_config(path)


def test_missing_file_and_unknown_override_are_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_config(str(tmp_path / "nope.yaml"))
    with pytest.raises(ValueError, match="Non-existent key: SOLVER.LEARNING_RATE"):
        load_config(None, ["SOLVER.LEARNING_RATE", "0.1"])
    with pytest.raises(ValueError, match="KEY VALUE pairs"):
        load_config(None, ["SOLVER.BASE_LR"])


def test_invalid_choice_lists_the_valid_ones():
    with pytest.raises(ValueError, match=re.escape(f"TEST.ENSEMBLE_METHOD = 'vote' is not one of {list(AGGREGATIONS)}")):
        load_config(None, ["TEST.ENSEMBLE_METHOD", "vote"])


@pytest.mark.parametrize("key,vocabulary", [
    ("ATS.SAMPLER", SAMPLERS), ("ATS.SCORE", SCORES), ("ATS.SCOPE", SCOPES), ("DATA.DECODER", DECODER_NAMES),
    ("TEST.CLIP_POSITION", CLIP_POSITIONS), ("TEST.ENSEMBLE_METHOD", AGGREGATIONS), ("MODEL.NAME", list_models()),
])
def test_the_config_accepts_exactly_the_vocabulary_of_the_module_that_owns_the_option(key, vocabulary):
    for value in vocabulary:
        cfg = load_config(None, [key, value])
        section, leaf = key.split(".")
        assert cfg[section][leaf] == value
    with pytest.raises(ValueError, match=re.escape(f"{key} = 'nope' is not one of {list(vocabulary)}")):
        load_config(None, [key, "nope"])


@pytest.mark.parametrize("name,mean,std,crop,jitter", [
    # The official configs: TimeSformer's DATA.MEAN / STD 0.45 / 0.225 and TRAIN_JITTER_SCALES
    # [256, 320] ([448, 512] for HR); XViT's 0.5 / 0.5 (video_models.md, data.md).
    ("timesformer_base", 0.45, 0.225, 224, [256, 320]),
    ("timesformer_hr", 0.45, 0.225, 448, [448, 512]),
    ("xvit_b16_16", 0.5, 0.5, 224, [256, 320]),
])
def test_the_data_keys_left_unset_take_the_model_presets_input(name, mean, std, crop, jitter):
    cfg = load_config(None, ["MODEL.NAME", name])
    assert cfg.DATA.MEAN == [mean] * 3 and cfg.DATA.STD == [std] * 3
    assert cfg.DATA.TRAIN_CROP_SIZE == cfg.DATA.TEST_CROP_SIZE == crop and cfg.DATA.TRAIN_JITTER_SCALES == jitter


def test_a_config_value_overrides_the_preset_and_the_scales_follow_the_image_size():
    cfg = load_config(None, ["MODEL.NAME", "xvit_b16_16", "DATA.MEAN", "[0.45, 0.45, 0.45]", "DATA.TEST_CROP_SIZE", "256"])
    assert cfg.DATA.MEAN == [0.45] * 3 and cfg.DATA.STD == [0.5] * 3 and cfg.DATA.TEST_CROP_SIZE == 256
    small = load_config(None, ["MODEL.NAME", "timesformer_tiny", "MODEL.IMG_SIZE", "48"])
    # the tiny preset trains 64-pixel crops on short sides 64..80; at 48 pixels, 48..60
    assert small.DATA.TRAIN_CROP_SIZE == 48 and small.DATA.TRAIN_JITTER_SCALES == [48, 60]


@pytest.mark.parametrize("path", sorted(str(p) for p in CONFIGS.rglob("*.yaml")), ids=lambda p: Path(p).name)
def test_every_shipped_config_keeps_the_normalisation_and_crops_it_was_measured_with(path):
    # The official configs: TimeSformer 0.45 / 0.225, XViT 0.5 / 0.5; the synthetic ones follow
    # their family too (the zoo's tiny XViT was trained with 0.5 / 0.5: zoo/manifest.json).
    cfg = load_config(path)
    xvit = ([0.5] * 3, [0.5] * 3)
    expected = {"xvit_b16_16": xvit, "xvit_tiny": xvit}.get(cfg.MODEL.NAME, ([0.45] * 3, [0.225] * 3))
    assert (cfg.DATA.MEAN, cfg.DATA.STD) == expected
    assert cfg.DATA.TRAIN_CROP_SIZE == cfg.DATA.TEST_CROP_SIZE == (cfg.MODEL.IMG_SIZE or get_preset(cfg.MODEL.NAME).img_size)


def test_a_yaml_can_extend_a_base(tmp_path):
    write(tmp_path / "base.yaml", "MODEL:\n  NAME: xvit_tiny\n  NUM_CLASSES: 7\n")
    path = write(tmp_path / "child.yaml", "_BASE_: base.yaml\nMODEL:\n  NUM_CLASSES: 9\n")
    cfg = load_config(path)
    assert cfg.MODEL.NAME == "xvit_tiny" and cfg.MODEL.NUM_CLASSES == 9


def test_model_and_ats_sections_build_the_model():
    cfg = load_config(None, ["MODEL.NAME", "timesformer_tiny", "MODEL.NUM_CLASSES", "4", "MODEL.DEPTH", "7",
                             "ATS.ENABLE", "True", "ATS.RATIO", "0.5", "ATS.BLOCKS", "[4, 5]"])
    assert model_overrides(cfg) == {"depth": 7}
    assert ats_options(cfg)["blocks"] == [4, 5]
    model = build_model_from_cfg(cfg)
    assert model.depth == 7 and model.num_classes == 4 and model.ats.blocks == (4, 5) and model.ats.ratio == 0.5
    assert ats_options(load_config(None, [])) is None


def test_saved_config_loads_back_identically(tmp_path):
    cfg = load_config(None, ["ATS.ENABLE", "True", "MODEL.NUM_FRAMES", "16"])
    save_config(cfg, str(tmp_path / "config.yaml"))
    assert load_config(str(tmp_path / "config.yaml")) == cfg


@pytest.mark.parametrize("path", sorted(str(p) for p in CONFIGS.rglob("*.yaml")), ids=lambda p: Path(p).name)
def test_every_shipped_config_loads_and_builds_on_meta(path):
    import torch

    cfg = load_config(path)
    with torch.device("meta"):
        model = build_model_from_cfg(cfg)
    assert model.num_classes == cfg.MODEL.NUM_CLASSES


def test_the_xvit_consensus_is_chosen_in_the_config():
    cfg = load_config(None, ["MODEL.NAME", "xvit_tiny", "MODEL.DEPTH", "2", "MODEL.CONSENSUS", "avg"])
    model = build_model_from_cfg(cfg)
    assert model.consensus_type == "avg" and [name for name, _ in model.consensus.named_parameters()] == \
        ["fc.weight", "fc.bias"]
    with pytest.raises(ValueError, match="consensus 'mean' must be one of"):
        build_model_from_cfg(load_config(None, ["MODEL.NAME", "xvit_tiny", "MODEL.CONSENSUS", "mean"]))
