"""Our backbones against logits computed by the official TimeSformer and XViT code.

See tests/fixtures/reference/README.md for how the reference numbers were made.
"""

from pathlib import Path

import pytest
import torch

from video_ats import build_model, load_checkpoint
from video_ats.ats import SCOPES
from video_ats.checkpoint import checkpoint_num_classes

FIXTURES = Path(__file__).parent / "fixtures" / "reference"

# Every parity test holds on each CPU linear-layer path (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("each_linear_kernel")


def load(name):
    return torch.load(FIXTURES / f"{name}.pt", weights_only=False)


def timesformer_from(fixture, ats=None):
    config = fixture["config"]
    model = build_model("timesformer_tiny", num_classes=config["num_classes"], ats=ats, img_size=config["img_size"],
                        patch_size=config["patch_size"], num_frames=config["num_frames"],
                        embed_dim=config["embed_dim"], depth=config["depth"], num_heads=config["num_heads"])
    report = load_checkpoint(model, fixture["checkpoint"])
    assert report.source == "timesformer_official" and not report.resized
    return model.eval()


def xvit_from(fixture, ats=None):
    config = fixture["config"]
    model = build_model("xvit_tiny", num_classes=config["num_classes"], ats=ats, img_size=config["img_size"],
                        patch_size=config["patch_size"], num_frames=config["num_frames"],
                        num_segments=config["num_segments"], shift_div=config["shift_div"],
                        embed_dim=config["embed_dim"], depth=config["depth"], num_heads=config["num_heads"],
                        temp_embed_frames=config["vit_num_frames"], head_mlp_dim=config["head_mlp_dim"])
    # The official checkpoint's pos_embed covers 224 px; the loader resizes it as the official
    # forward does, and new_fc (unused by the official 'vit' consensus) is ignored.
    report = load_checkpoint(model, fixture["checkpoint"])
    assert report.source == "xvit_official" and sorted(report.ignored) == ["new_fc.bias", "new_fc.weight"]
    assert torch.equal(model.pos_embed.detach(), fixture["pos_embed_effective"])
    return model.eval()


@pytest.mark.parametrize("name", ["official_timesformer_tiny", "official_timesformer_tiny_t8"])
def test_timesformer_matches_the_official_code(name):
    fixture = load(name)
    model = timesformer_from(fixture)
    with torch.no_grad():
        features = model.forward_features(fixture["input"])
        logits = model.forward_head(features)
    assert torch.allclose(features, fixture["features"], atol=1e-5, rtol=0)
    assert torch.allclose(logits, fixture["logits"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["official_xvit_tiny", "official_xvit_tiny_f16_seg8"])
def test_xvit_matches_the_official_code(name):
    fixture = load(name)
    model = xvit_from(fixture)
    with torch.no_grad():
        features = model.forward_features(fixture["input"])
        logits = model.forward_head(features)
    assert torch.allclose(features, fixture["frame_features"], atol=1e-5, rtol=0)
    assert torch.allclose(logits, fixture["logits"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("scope", SCOPES)
def test_ats_keeping_everything_matches_the_official_code(scope):
    ats = dict(sampler="topk", ratio=1.0, scope=scope, blocks=[1, 2, 3])
    for fixture, model in ((f := load("official_timesformer_tiny"), timesformer_from(f, ats)),
                           (g := load("official_xvit_tiny"), xvit_from(g, ats))):
        with torch.no_grad():
            logits = model(fixture["input"])
        assert torch.allclose(logits, fixture["logits"], atol=1e-5, rtol=0)


def official_avg_checkpoint(fixture, dropout: bool):
    """The fixture's weights as the official builder saves them with ``CONSENSUS_TYPE: avg``.

    The avg ConsensusModule has no parameters, so no ``consensus.*`` keys; the per-frame
    classifier is ``new_fc`` when MODEL.DROPOUT_RATE > 0 (``base_model.head`` is then a Dropout)
    and ``base_model.head`` itself when the rate is 0.
    """
    state = {key: value for key, value in fixture["checkpoint"]["model_state"].items()
             if not key.startswith("consensus.")}
    if not dropout:
        state = {(key.replace("new_fc.", "base_model.head.") if key.startswith("new_fc.") else key): value
                 for key, value in state.items()}
    return dict(fixture["checkpoint"], model_state=state)


@pytest.mark.parametrize("dropout", [True, False])
def test_the_avg_consensus_matches_the_official_per_frame_classifier(dropout):
    # The official avg forward: new_fc on each frame's features, then the mean over the frames
    # of a segment (the whole clip when num_frames == num_segments, the only case it supports).
    fixture = load("official_xvit_tiny")
    config = fixture["config"]
    checkpoint = official_avg_checkpoint(fixture, dropout)
    classifier = "new_fc." if dropout else "base_model.head."
    weight, bias = (checkpoint["model_state"][classifier + name] for name in ("weight", "bias"))
    expected = (fixture["frame_features"] @ weight.T + bias).mean(dim=1)
    model = build_model("xvit_tiny", num_classes=config["num_classes"], img_size=config["img_size"],
                        patch_size=config["patch_size"], num_frames=config["num_frames"],
                        num_segments=config["num_segments"], shift_div=config["shift_div"],
                        embed_dim=config["embed_dim"], depth=config["depth"], num_heads=config["num_heads"],
                        temp_embed_frames=config["vit_num_frames"], consensus="avg")
    report = load_checkpoint(model, checkpoint)
    assert report.source == "xvit_official" and not report.ignored
    assert checkpoint_num_classes(checkpoint) == config["num_classes"]
    assert torch.equal(model.consensus.fc.weight.detach(), weight)
    with torch.no_grad():
        logits = model.eval()(fixture["input"])
    assert torch.allclose(logits, expected, atol=1e-5, rtol=0)
    assert not torch.allclose(logits, fixture["logits"], atol=1e-2)     # not the 'vit' head's answer
