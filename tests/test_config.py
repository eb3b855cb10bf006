"""The one config source: defaults, YAML overrides, command-line overrides, clear errors."""

from pathlib import Path

import pytest

from video_ats.config import ats_options, build_model_from_cfg, get_cfg, load_config, model_overrides, save_config

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
    with pytest.raises(ValueError, match=r"TEST.ENSEMBLE_METHOD = 'vote' is not one of \['prob', 'logit_sum'\]"):
        load_config(None, ["TEST.ENSEMBLE_METHOD", "vote"])


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
