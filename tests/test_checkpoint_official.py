"""Official TimeSformer (.pyth) and XViT checkpoints: key layouts, embedding resizes, reference logits.

Full-size layouts are checked on the meta device from the key lists measured on the official
classes (tests/fixtures/keys/*.json); numbers come from the tiny reference fixtures computed by
the official code (tests/fixtures/reference/README.md).
"""

import json
from pathlib import Path

import pytest
import torch

from video_ats import build_model, load_checkpoint
from video_ats.checkpoint import CheckpointError

FIXTURES = Path(__file__).parent / "fixtures"


def reference(name):
    return torch.load(FIXTURES / "reference" / f"{name}.pt", weights_only=False)


def official_keys(name):
    """{key: shape} of an official checkpoint, measured on the official class."""
    listing = json.loads((FIXTURES / "keys" / f"{name}.json").read_text())
    assert len(listing["keys"]) == listing["num_keys"]
    return {key: tuple(shape) for key, shape in listing["keys"]}


def meta_checkpoint(shapes, **replaced):
    """A PySlowFast checkpoint of meta tensors with the given shapes (no memory, no time)."""
    shapes = dict(shapes, **replaced)
    return {"epoch": 15, "model_state": {key: torch.empty(shape, device="meta") for key, shape in shapes.items()},
            "optimizer_state": {}, "cfg": "TRAIN:\n  ENABLE: True\n"}


def meta_model(name, **kwargs):
    with torch.device("meta"):
        return build_model(name, **kwargs)


def tiny_timesformer(config, **overrides):
    kwargs = dict(num_classes=config["num_classes"], img_size=config["img_size"], patch_size=config["patch_size"],
                  num_frames=config["num_frames"], embed_dim=config["embed_dim"], depth=config["depth"],
                  num_heads=config["num_heads"])
    return build_model("timesformer_tiny", **dict(kwargs, **overrides))


@pytest.mark.parametrize("name, preset, frames", [("timesformer_divst_8x224_k400", "timesformer_base", 8),
                                                  ("timesformer_hr_divst_16x448_k400", "timesformer_hr", 16),
                                                  ("timesformer_l_divst_96x224_k400", "timesformer_large", 96)])
def test_full_size_official_timesformer_layouts_load_with_every_key(name, preset, frames):
    shapes = official_keys(name)
    assert len(shapes) == 249 and shapes["model.time_embed"] == (1, frames, 768)
    report = load_checkpoint(meta_model(preset), meta_checkpoint(shapes))
    assert report.source == "timesformer_official"
    assert report.loaded == 249 and not report.resized and not report.ignored and not report.initialized


@pytest.mark.parametrize("name, preset, frames", [("timesformer_hr_divst_16x448_k400", "timesformer_hr", 16),
                                                  ("timesformer_l_divst_96x224_k400", "timesformer_large", 96)])
def test_released_hr_and_l_files_with_an_8_frame_time_embed_are_resized(name, preset, frames, caplog):
    # TimeSformer issue #44: the released HR / L files hold time_embed (1, 8, 768).
    checkpoint = meta_checkpoint(official_keys(name), **{"model.time_embed": (1, 8, 768)})
    with caplog.at_level("WARNING", logger="video_ats.checkpoint"):
        report = load_checkpoint(meta_model(preset), checkpoint)
    assert report.resized == [("time_embed", (1, 8, 768), (1, frames, 768))]
    assert "resized time_embed" in caplog.text


def test_hr_checkpoint_into_a_224_model_resizes_the_position_embedding():
    checkpoint = meta_checkpoint(official_keys("timesformer_hr_divst_16x448_k400"))
    report = load_checkpoint(meta_model("timesformer_base"), checkpoint)
    assert report.resized == [("pos_embed", (1, 785, 768), (1, 197, 768)), ("time_embed", (1, 16, 768), (1, 8, 768))]


def test_a_mis_sized_time_embed_is_an_error_when_resizing_is_off():
    checkpoint = meta_checkpoint(official_keys("timesformer_hr_divst_16x448_k400"), **{"model.time_embed": (1, 8, 768)})
    with pytest.raises(CheckpointError, match=r"time_embed \(1, 8, 768\) vs \(1, 16, 768\)"):
        load_checkpoint(meta_model("timesformer_hr"), checkpoint, resize_embeddings=False)


@pytest.mark.parametrize("name, preset, classes", [("xvit_b16_f16_seg8_k600", "xvit_b16_16", 600),
                                                   ("xvit_b16_f8_seg8_k400", "xvit_b16_8", 400)])
def test_full_size_official_xvit_layouts_load_and_ignore_new_fc(name, preset, classes):
    shapes = official_keys(name)
    assert len(shapes) == 171 and shapes["base_model.temp_embed"] == (1, 8, 1, 768)
    report = load_checkpoint(meta_model(preset, num_classes=classes), meta_checkpoint(shapes))
    assert report.source == "xvit_official"
    assert sorted(report.ignored) == ["new_fc.bias", "new_fc.weight"]
    assert report.loaded == 169 and not report.resized and not report.initialized


def test_timesformer_official_fixture_matches_the_official_logits():
    fixture = reference("official_timesformer_tiny")
    model = tiny_timesformer(fixture["config"]).eval()
    load_checkpoint(model, fixture["checkpoint"], source="timesformer_official")
    with torch.no_grad():
        assert torch.allclose(model(fixture["input"]), fixture["logits"], atol=1e-5, rtol=0)


def test_time_embed_of_another_length_is_resized_as_the_official_loader_does():
    four_frames = reference("official_timesformer_tiny")
    eight_frames = reference("official_timesformer_tiny_t8")
    model = tiny_timesformer(eight_frames["config"]).eval()
    report = load_checkpoint(model, four_frames["checkpoint"])
    assert report.resized == [("time_embed", (1, 4, 48), (1, 8, 48))]
    old = four_frames["checkpoint"]["model_state"]["model.time_embed"]
    assert torch.equal(model.time_embed.detach(), old[:, [0, 0, 1, 1, 2, 2, 3, 3]])
    with torch.no_grad():
        logits = model(eight_frames["input"])
    assert torch.allclose(logits, eight_frames["logits_from_t4_weights"], atol=1e-5, rtol=0)


def test_pos_embed_is_resized_like_the_official_forward_for_a_larger_input():
    fixture = reference("official_timesformer_tiny")
    larger = reference("official_timesformer_tiny_48px")
    model = tiny_timesformer(fixture["config"], img_size=48).eval()
    report = load_checkpoint(model, fixture["checkpoint"])
    assert report.resized == [("pos_embed", (1, 17, 48), (1, 37, 48))]
    with torch.no_grad():
        logits = model(larger["input_48px"])
    assert torch.allclose(logits, larger["logits_48px"], atol=1e-5, rtol=0)


def test_xvit_fixture_in_a_file_matches_the_official_logits(tmp_path):
    fixture = reference("official_xvit_tiny_f16_seg8")
    config = fixture["config"]
    path = tmp_path / "xvit_b16_16_k600.pth"
    torch.save(fixture["checkpoint"], path)
    model = build_model("xvit_tiny", num_classes=config["num_classes"], img_size=config["img_size"],
                        patch_size=config["patch_size"], num_frames=config["num_frames"],
                        num_segments=config["num_segments"], embed_dim=config["embed_dim"], depth=config["depth"],
                        num_heads=config["num_heads"], head_mlp_dim=config["head_mlp_dim"]).eval()
    report = load_checkpoint(model, path)
    assert report.path == str(path) and report.resized == [("pos_embed", (1, 785, 48), (1, 17, 48))]
    with torch.no_grad():
        assert torch.allclose(model(fixture["input"]), fixture["logits"], atol=1e-5, rtol=0)


def test_an_xvit_checkpoint_into_a_timesformer_is_refused():
    fixture = reference("official_xvit_tiny")
    model = build_model("timesformer_tiny", num_classes=5, img_size=32, patch_size=8, embed_dim=48, depth=4,
                        num_heads=4)
    with pytest.raises(CheckpointError, match="holds a XViT .* but the model is a TimeSformer"):
        load_checkpoint(model, fixture["checkpoint"])


def test_a_space_only_timesformer_is_refused_with_the_reason():
    shapes = {key: shape for key, shape in official_keys("timesformer_divst_8x224_k400").items()
              if "temporal" not in key and "time_embed" not in key}
    with pytest.raises(CheckpointError, match="no temporal attention") as error:
        load_checkpoint(meta_model("timesformer_base"), meta_checkpoint(shapes))
    assert "blocks.0.temporal_attn.qkv.weight" in str(error.value)


def test_a_checkpoint_of_another_size_lists_the_mis_shaped_keys():
    fixture = reference("official_timesformer_tiny")
    model = build_model("timesformer_tiny", num_classes=5)       # dim 96, depth 6, patch 8
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(model, fixture["checkpoint"])
    message = str(error.value)
    assert "the checkpoint has 4 blocks, the model 6" in message
    assert "embedding width 48 in the checkpoint, 96 in the model" in message
    assert "blocks.5.norm1.weight" in message and "cls_token (1, 1, 48) vs (1, 1, 96)" in message
