"""What each backbone says about itself: presets and their input, the classifier it can swap,
the features before it, the parameters it keeps from weight decay, its packing option."""

import pytest
import torch

import video_ats
from model_helpers import tiny_model, varied_clips
from video_ats import build_model, list_models, pretrained_cfg
from video_ats.engine.optim import param_groups


def test_list_models_names_every_preset_and_filters_by_family():
    assert list_models() == ["timesformer_base", "timesformer_hr", "timesformer_large", "timesformer_tiny",
                             "xvit_b16_16", "xvit_b16_32", "xvit_b16_8", "xvit_tiny"]
    assert list_models("XViT") == ["xvit_b16_16", "xvit_b16_32", "xvit_b16_8", "xvit_tiny"]
    with pytest.raises(ValueError, match=r"unknown model family 'ViViT'; valid families are \['TimeSformer', 'XViT'\]"):
        list_models("ViViT")


@pytest.mark.parametrize("name,input_size,mean,std", [
    # The official configs: TimeSformer_divST_8x32_224 (DATA.MEAN 0.45, STD 0.225), XViT's
    # Kinetics configs (0.5 / 0.5), TimeSformer-HR 16 x 448.
    ("timesformer_base", (3, 8, 224, 224), (0.45,) * 3, (0.225,) * 3),
    ("timesformer_hr", (3, 16, 448, 448), (0.45,) * 3, (0.225,) * 3),
    ("xvit_b16_16", (3, 16, 224, 224), (0.5,) * 3, (0.5,) * 3),
])
def test_each_preset_states_the_input_its_weights_expect(name, input_size, mean, std):
    config = pretrained_cfg(name)
    assert (config["input_size"], config["mean"], config["std"]) == (input_size, mean, std)
    with torch.device("meta"):
        model = build_model(name)
    assert (3, model.num_frames, model.img_size, model.img_size) == input_size
    assert (model.pretrained_cfg["mean"], model.pretrained_cfg["std"]) == (mean, std)


def test_a_built_model_carries_the_input_config_of_its_overrides():
    with torch.device("meta"):
        model = build_model("xvit_b16_16", num_frames=8, img_size=112)
    assert model.pretrained_cfg["input_size"] == (3, 8, 112, 112)
    assert model.pretrained_cfg["mean"] == (0.5,) * 3


# TimeSformer's linear head, XViT's temporal consensus head, XViT's frame-average head
HEADS = [("timesformer_tiny", {}), ("xvit_tiny", {"depth": 4}), ("xvit_tiny", {"depth": 4, "consensus": "avg"})]


def test_the_default_ats_blocks_are_the_papers():
    assert pretrained_cfg("timesformer_base")["default_ats_blocks"] == (3, 4, 5)
    assert pretrained_cfg("xvit_b16_16")["default_ats_blocks"] == (3, 4, 5, 6, 7, 8, 9, 10, 11)
    assert build_model("timesformer_tiny", ats={}).ats.blocks == (3, 4, 5)


@pytest.mark.parametrize("name,overrides", HEADS)
def test_forward_head_before_the_classifier_gives_what_the_classifier_reads(name, overrides):
    model = tiny_model(name, **overrides)
    clips = varied_clips()
    with torch.no_grad():
        features = model.forward_features(clips)
        logits = model(clips)
        pre_logits = model.forward_head(features, pre_logits=True)
    assert pre_logits.shape == (4, model.num_features)
    assert torch.equal(last_linear(model)(pre_logits), logits)


def last_linear(model):
    """The classifier: TimeSformer's head, XViT's consensus.fc (avg) or consensus.mlp_head.4 (vit)."""
    if hasattr(model, "head"):
        return model.head
    return model.consensus.fc if model.consensus_type == "avg" else model.consensus.mlp_head[4]


@pytest.mark.parametrize("name,overrides", HEADS)
def test_reset_classifier_swaps_the_last_linear_and_zero_classes_returns_the_features(name, overrides):
    model = tiny_model(name, **overrides)
    clips = varied_clips()
    with torch.no_grad():
        pre_logits = model.forward_head(model.forward_features(clips), pre_logits=True)
    model.reset_classifier(7)
    assert model.num_classes == 7
    with torch.no_grad():
        assert model(clips).shape == (4, 7)
    model.reset_classifier(0)
    with torch.no_grad():
        assert torch.equal(model(clips), pre_logits)
    assert not any(key.endswith(("head.weight", "mlp_head.4.weight", "consensus.fc.weight"))
                   for key in model.state_dict())


@pytest.mark.parametrize("consensus,head_token", [("vit", {"consensus.cls_token"}), ("avg", set())])
def test_the_optimizer_exempts_the_parameters_the_model_names(consensus, head_token):
    model = build_model("xvit_tiny", num_classes=3, depth=2, consensus=consensus)
    _, no_decay = param_groups(model, weight_decay=1e-4)
    names = {id(p): n for n, p in model.named_parameters()}
    exempt_matrices = {names[id(p)] for p in no_decay["params"] if p.ndim > 1}
    assert exempt_matrices == {"pos_embed", "cls_token", "temp_embed"} | head_token
    assert model.no_weight_decay() == {"pos_embed", "cls_token", "temp_embed"} | head_token


def test_pack_min_padding_is_an_option_checked_when_the_model_is_built():
    assert build_model("timesformer_tiny", pack_min_padding=1.0).pack_min_padding == 1.0
    with pytest.raises(ValueError, match=r"pack_min_padding must be a number in \[0, 1\].*got 1.5"):
        build_model("xvit_tiny", pack_min_padding=1.5)


def test_the_public_api_is_one_import_away():
    assert video_ats.flops.clip_gflops is video_ats.clip_gflops
    for name in ("build_model", "list_models", "pretrained_cfg", "load_checkpoint", "model_gflops",
                 "clip_gflops", "fvcore_gflops"):
        assert name in video_ats.__all__ and callable(getattr(video_ats, name))
    assert hasattr(video_ats.data, "load_class_list")
