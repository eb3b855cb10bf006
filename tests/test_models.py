"""The backbones with ATS: parity when nothing is dropped, batch invariance, gradients, stats."""

import pytest
import torch

from model_helpers import BACKBONES, tiny_model, varied_clips, with_ats
from video_ats import build_model
from video_ats.ats import SAMPLERS, SCOPES


@pytest.mark.usefixtures("each_linear_kernel")
@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("name", BACKBONES)
def test_keeping_every_token_gives_the_plain_model(name, scope):
    plain = tiny_model(name)
    keep_all = with_ats(plain, name, dict(sampler="topk", ratio=1.0, scope=scope))
    clips = varied_clips()
    with torch.no_grad():
        expected, actual = plain(clips), keep_all(clips)
    assert torch.allclose(actual, expected, atol=1e-5, rtol=0)
    assert all(stage["kept"].tolist() == [64] * 4 for stage in keep_all.ats_stats)


# Every sampler, and its with the released code's grid rule as well.
SAMPLINGS = {sampler: dict(sampler=sampler) for sampler in SAMPLERS}
SAMPLINGS["its_official_grid"] = dict(sampler="its", grid="official")


@pytest.mark.usefixtures("each_linear_kernel")
@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("sampling", SAMPLINGS)
@pytest.mark.parametrize("name", BACKBONES)
def test_a_clip_gives_the_same_logits_alone_and_in_a_batch(name, sampling, scope):
    sampler = SAMPLINGS[sampling]["sampler"]
    model = tiny_model(name, ats=dict(SAMPLINGS[sampling], ratio=0.6, scope=scope))
    clips = varied_clips()
    with torch.no_grad():
        batched = model(clips)
        counts = torch.stack([stage["kept"] for stage in model.ats_stats])       # (stages, B)
        alone = torch.cat([model(clips[i:i + 1]) for i in range(len(clips))])
    assert torch.allclose(batched, alone, atol=1e-4, rtol=0)
    if sampler == "its" or scope == "frame":
        # Adaptive: clips of different content keep different numbers of positions, so the
        # batch was padded.
        assert any(len(set(row.tolist())) > 1 for row in counts)
    else:
        # topk and random keep a fixed count per stage in tube scope: nothing to pad.
        assert all(len(set(row.tolist())) == 1 for row in counts)


@pytest.mark.parametrize("name", BACKBONES)
def test_eval_is_deterministic(name):
    model = tiny_model(name, ats=dict(sampler="its", ratio=0.5))
    clips = varied_clips()
    with torch.no_grad():
        first, second = model(clips), model(clips)
    assert torch.equal(first, second)


@pytest.mark.parametrize("scope", SCOPES)
def test_random_sampler_is_reproducible_with_a_seed(scope):
    clips = varied_clips()

    def kept_positions(seed):
        model = tiny_model("timesformer_tiny", ats=dict(sampler="random", ratio=0.5, scope=scope, seed=seed))
        with torch.no_grad():
            logits = model(clips)
        return logits, [stage["kept_positions"] for stage in model.ats_stats]

    logits_a, positions_a = kept_positions(seed=3)
    logits_b, positions_b = kept_positions(seed=3)
    _, positions_c = kept_positions(seed=4)
    assert torch.equal(logits_a, logits_b)
    assert all(torch.equal(a, b) for a, b in zip(positions_a, positions_b))
    assert not all(a.shape == c.shape and torch.equal(a, c) for a, c in zip(positions_a, positions_c))


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("name", BACKBONES)
def test_gradients_reach_every_parameter_with_padding(name, scope):
    model = tiny_model(name, ats=dict(sampler="its", ratio=0.6, scope=scope)).train()
    clips = varied_clips()
    loss = torch.nn.functional.cross_entropy(model(clips), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    counts = torch.stack([stage["kept"] for stage in model.ats_stats])
    assert any(len(set(row.tolist())) > 1 for row in counts), "the batch should be padded"
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None, f"{parameter_name} got no gradient"
        assert torch.isfinite(parameter.grad).all(), f"{parameter_name} has a non-finite gradient"
        assert parameter.grad.abs().sum() > 0, f"{parameter_name} has an all-zero gradient"


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("name", BACKBONES)
def test_ats_stats_describe_the_kept_positions(name, scope):
    model = tiny_model(name, ats=dict(sampler="its", ratio=0.6, scope=scope))
    with torch.no_grad():
        model(varied_clips())
    expected_blocks = [3, 4, 5] if name.startswith("timesformer") else list(range(3, 12))
    assert [stage["block"] for stage in model.ats_stats] == expected_blocks
    previous = [set(range(64))] * 4
    for stage in model.ats_stats:
        positions = stage["kept_positions"]
        assert positions.shape[0] == 4
        for clip in range(4):
            row = positions[clip]
            real = row[row >= 0].tolist()
            assert len(real) == stage["kept"][clip].item()
            assert real == sorted(real), "kept positions keep their original order"
            assert set(real) <= previous[clip], "a stage can only keep positions that are still present"
            assert (row[len(real):] == -1).all(), "padding comes last and is marked -1"
            previous[clip] = set(real)
        assert (stage["kept"] <= stage["input_positions"]).all()
        assert stage["frame_kept"].shape == (4, 8)


def test_frame_scope_lets_frames_keep_different_positions():
    model = tiny_model("timesformer_tiny", ats=dict(sampler="its", ratio=0.4, scope="frame"))
    clips = varied_clips()
    clips[:, :, 4:] = clips[:, :, 4:].flip(-1)        # the second half of each clip is mirrored
    with torch.no_grad():
        model(clips)
    valid = model.ats_stats[0]["token_valid"]          # (B, T, P')
    assert (valid != valid[:, :1]).any(), "some frame kept a position another frame dropped"


def test_temporal_fc_starts_at_zero():
    model = build_model("timesformer_tiny", num_classes=3)
    assert all(block.temporal_fc.weight.abs().sum() == 0 for block in model.blocks)


@pytest.mark.parametrize("name", ["timesformer_base", "timesformer_hr", "timesformer_large", "xvit_b16_8",
                                  "xvit_b16_16", "xvit_b16_32", "timesformer_tiny", "xvit_tiny"])
def test_every_preset_builds(name):
    with torch.device("meta"):
        model = build_model(name, num_classes=400, ats={})
    assert model.ats_blocks()


@pytest.mark.usefixtures("each_linear_kernel")
@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("name", BACKBONES)
def test_running_only_the_valid_rows_gives_the_padded_result(name, scope, monkeypatch):
    import video_ats.models.timesformer as timesformer_module
    import video_ats.models.token_selection as token_selection
    import video_ats.models.xvit as xvit_module

    model = tiny_model(name, ats=dict(sampler="its", ratio=0.6, scope=scope))
    clips = varied_clips()
    model.pack_min_padding = 1.0                                           # never pack
    with torch.no_grad():
        padded = model(clips)
    calls = []
    module = timesformer_module if name.startswith("timesformer") else xvit_module

    def counting_unpack(*args, **kwargs):
        calls.append(1)
        return token_selection.unpack(*args, **kwargs)

    monkeypatch.setattr(module, "unpack", counting_unpack)
    model.pack_min_padding = 0.0                                           # pack whenever a clip is padded
    with torch.no_grad():
        packed = model(clips)
    assert calls, "the batch has padding, so the packed path should have run"
    assert torch.allclose(packed, padded, atol=1e-5, rtol=0)


def test_the_fast_cpu_linear_follows_weight_updates():
    from video_ats.models.layers import linear

    layer = torch.nn.Linear(8, 4)
    x = torch.randn(3, 8)
    with torch.no_grad():
        before = linear(x, layer)                      # may cache a prepacked copy of the weight
        assert torch.allclose(before, torch.nn.functional.linear(x, layer.weight, layer.bias), atol=1e-6)
        layer.weight.mul_(2)                           # an in-place update, as an optimizer step makes
        assert torch.allclose(linear(x, layer), torch.nn.functional.linear(x, layer.weight, layer.bias), atol=1e-6)
        layer.load_state_dict({"weight": torch.ones(4, 8), "bias": torch.zeros(4)})
        assert torch.allclose(linear(x, layer), x.sum(dim=1, keepdim=True).expand(3, 4), atol=1e-5)
