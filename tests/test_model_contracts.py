"""build_model's contract: presets, parameter counts, and clear errors on bad input."""

import pytest
import torch

from video_ats import PRESETS, build_model


def meta_model(name, **kwargs):
    with torch.device("meta"):
        return build_model(name, **kwargs)


def count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name,num_classes,expected", [
    # Counts of the official classes instantiated with these configs (see docs/models.md).
    ("timesformer_base", 400, 121_566_352),      # the published 121.57M
    ("timesformer_hr", 400, 122_024_080),
    ("timesformer_large", 400, 121_633_936),
])
def test_timesformer_parameter_counts_match_the_official_model(name, num_classes, expected):
    assert count(meta_model(name, num_classes=num_classes)) == expected


@pytest.mark.parametrize("name,num_classes,official_total", [
    ("xvit_b16_16", 600, 94_406_064),            # the reference's 94.41M at 600 classes
    ("xvit_b16_8", 400, 94_098_464),
])
def test_xvit_parameter_counts_match_the_official_model(name, num_classes, official_total):
    # The official builder also creates `new_fc` (768 x C + C), which its 'vit' consensus
    # never uses; we do not create it.
    unused_new_fc = 768 * num_classes + num_classes
    assert count(meta_model(name, num_classes=num_classes)) == official_total - unused_new_fc


def test_ats_does_not_add_parameters():
    assert count(meta_model("timesformer_base")) == count(meta_model("timesformer_base", ats={"ratio": 0.5}))


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="timesformer_base.*xvit_tiny|valid models"):
        build_model("timesformer_huge")
    with pytest.raises(ValueError) as error:
        build_model("vit")
    assert all(name in str(error.value) for name in PRESETS)


def test_unknown_override_lists_the_valid_ones():
    with pytest.raises(ValueError) as error:
        build_model("timesformer_tiny", num_layers=3)
    assert "num_layers" in str(error.value) and "depth" in str(error.value) and "num_frames" in str(error.value)


def test_xvit_overrides_include_shift_div_and_num_segments():
    model = build_model("xvit_tiny", num_classes=3, shift_div=4, num_segments=4)
    assert model.blocks[0].fold == 96 // 4 and model.num_segments == 4


@pytest.mark.parametrize("ats,message", [
    ({"sampler": "gumbel"}, r"sampler 'gumbel'.*\['its', 'topk', 'random'\]"),
    ({"score": "entropy"}, r"score 'entropy'.*\['cls_vnorm', 'cls', 'self_attn'\]"),
    ({"scope": "spacetime"}, r"scope 'spacetime'.*\['tube', 'frame'\]"),
    ({"ratio": 0.0}, r"ratio must be in \(0, 1\]"),
    ({"ratio": 1.5}, r"ratio must be in \(0, 1\]"),
    ({"blocks": [3, 6]}, r"blocks \[6\] are outside the model's depth; valid blocks are 0..5"),
    ({"blocks": [-1]}, r"outside the model's depth"),
    ({"budget": 10}, r"unknown ATS option\(s\) \['budget'\]; valid options are \['blocks', 'ratio'"),
    ({"num_tokens": 0}, r"num_tokens must be a positive integer"),
])
def test_invalid_ats_options_are_refused_with_the_valid_values(ats, message):
    with pytest.raises(ValueError, match=message):
        build_model("timesformer_tiny", num_classes=3, ats=ats)


@pytest.mark.parametrize("name", ["timesformer_tiny", "xvit_tiny"])
@pytest.mark.parametrize("shape,message", [
    ((3, 8, 64, 64), r"expected a video tensor of shape \(B, 3, 8, 64, 64\).*got shape \(3, 8, 64, 64\)"),
    ((1, 1, 8, 64, 64), r"expected 3 channels.*got shape \(1, 1, 8, 64, 64\)"),
    ((1, 3, 4, 64, 64), r"expected 8 frames.*got shape \(1, 3, 4, 64, 64\)"),
    ((1, 3, 8, 60, 64), r"spatial size 60x64 is not a multiple of the patch size 8"),
    ((1, 3, 8, 72, 72), r"expected spatial size 64x64.*got shape \(1, 3, 8, 72, 72\)"),
])
def test_wrong_input_shapes_name_expected_and_actual(name, shape, message):
    model = build_model(name, num_classes=3).eval()
    with pytest.raises(ValueError, match=message):
        model(torch.zeros(shape))


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("name", ["timesformer_tiny", "xvit_tiny"])
def test_non_finite_input_is_refused_not_predicted(name, bad_value):
    model = build_model(name, num_classes=3, ats={"ratio": 0.5}).eval()
    video = torch.zeros(2, 3, 8, 64, 64)
    video[1, 0, 3, 10, 10] = bad_value
    with pytest.raises(ValueError, match="NaN or Inf"):
        model(video)


def test_integer_input_is_refused():
    with pytest.raises(ValueError, match="float"):
        build_model("timesformer_tiny", num_classes=3)(torch.zeros(1, 3, 8, 64, 64, dtype=torch.uint8))
