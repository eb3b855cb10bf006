"""The CPU linear-layer paths: same results on each, options that force one, the timed choice."""

import pytest
import torch

import video_ats.models.linear_kernels as kernels
from model_helpers import tiny_model, varied_clips
from video_ats.flops import clip_gflops
from video_ats.models.linear_kernels import (KERNEL_ENV, PREPACK_ENV, LinearOptions, current_options,
                                             forget_kernel_choices, kernel_choices, linear, linear_options,
                                             resolve_kernel)



@pytest.fixture()
def onednn_present(monkeypatch):
    """The tests that only choose a path (never run oneDNN) hold on builds without it too."""
    monkeypatch.setattr(kernels, "onednn_available", lambda: True)


@pytest.fixture(autouse=True)
def fresh_choices():
    forget_kernel_choices()
    yield
    forget_kernel_choices()


def layer_and_input(rows=6, in_features=8, out_features=12, seed=0):
    torch.manual_seed(seed)
    layer = torch.nn.Linear(in_features, out_features)
    return layer, torch.randn(rows, in_features)


def expected(x, layer, activation=None, residual=None):
    """residual + act(x W^T + b) in float64, written out."""
    out = x.double() @ layer.weight.double().T + layer.bias.double()
    if activation == "gelu":
        out = 0.5 * out * (1 + torch.erf(out / 2 ** 0.5))
    return out if residual is None else residual.double() + out


@pytest.mark.parametrize("kernel", ["default", "onednn", "auto"])
@pytest.mark.parametrize("epilogue", ["none", "gelu", "residual"])
def test_every_path_computes_the_same_layer(kernel, epilogue):
    layer, x = layer_and_input(rows=40)
    activation = "gelu" if epilogue == "gelu" else None
    residual = torch.randn(40, 12) if epilogue == "residual" else None
    with torch.no_grad(), linear_options(kernel=kernel):
        out = linear(x, layer, activation, residual)
    assert out.dtype == torch.float32
    assert torch.allclose(out.double(), expected(x, layer, activation, residual), atol=1e-5, rtol=0)


@pytest.mark.usefixtures("onednn_present")
def test_forcing_a_kernel_selects_it_where_it_can_run():
    layer, x = layer_and_input()
    with torch.no_grad():
        assert resolve_kernel(x, layer, options=LinearOptions("onednn"))[0] == "onednn"
        assert resolve_kernel(x, layer, options=LinearOptions("default"))[0] == "default"
    assert kernel_choices() == []                      # forced: no trial ran


@pytest.mark.usefixtures("onednn_present")
def test_onednn_falls_back_to_the_default_path_where_it_cannot_run():
    layer, x = layer_and_input()
    forced = LinearOptions("onednn")
    assert resolve_kernel(x, layer, options=forced)[0] == "default"             # gradients are on
    with torch.no_grad():
        assert resolve_kernel(x.double(), layer.double(), options=forced)[0] == "default"
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert resolve_kernel(x, layer, options=forced)[0] == "default"
        assert resolve_kernel(x, layer, residual=torch.randn(6, 1), options=forced)[0] == "default"


def test_the_gradient_path_is_differentiable_whatever_is_forced():
    layer, x = layer_and_input()
    with linear_options(kernel="onednn"):
        linear(x, layer, "gelu").sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("prepack", [True, False])
def test_onednn_follows_in_place_weight_updates(prepack):
    layer, x = layer_and_input(rows=3, in_features=8, out_features=4)
    with torch.no_grad(), linear_options(kernel="onednn", prepack=prepack):
        linear(x, layer)                                       # may cache a prepacked copy
        layer.weight.mul_(2)                                   # as an optimizer step does
        assert torch.allclose(linear(x, layer).double(), expected(x, layer), atol=1e-5, rtol=0)
        layer.load_state_dict({"weight": torch.ones(4, 8), "bias": torch.zeros(4)})
        assert torch.allclose(linear(x, layer), x.sum(dim=1, keepdim=True).expand(3, 4), atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Options


def test_options_come_from_the_environment_unless_a_block_sets_them(monkeypatch):
    monkeypatch.delenv(KERNEL_ENV, raising=False)
    monkeypatch.delenv(PREPACK_ENV, raising=False)
    assert current_options() == LinearOptions("auto", True)
    monkeypatch.setenv(KERNEL_ENV, "onednn")
    monkeypatch.setenv(PREPACK_ENV, "0")
    assert current_options() == LinearOptions("onednn", False)
    with linear_options(kernel="default"):
        assert current_options() == LinearOptions("default", False)            # prepack kept from outside
        with linear_options(prepack=True):
            assert current_options() == LinearOptions("default", True)
        assert current_options() == LinearOptions("default", False)
    assert current_options() == LinearOptions("onednn", False)


def test_unknown_kernels_are_refused_with_the_valid_names(monkeypatch):
    with pytest.raises(ValueError, match=r"'fast'.*\['auto', 'default', 'onednn'\]"):
        LinearOptions("fast")
    monkeypatch.setenv(KERNEL_ENV, "mkl")
    with pytest.raises(ValueError, match=KERNEL_ENV):
        current_options()
    monkeypatch.setenv(KERNEL_ENV, "auto")
    monkeypatch.setenv(PREPACK_ENV, "maybe")
    with pytest.raises(ValueError, match=PREPACK_ENV):
        current_options()


def test_the_fixture_forces_the_kernel_inside_the_test(each_linear_kernel):
    assert current_options().kernel == each_linear_kernel


# ---------------------------------------------------------------------------------------------
# The timed choice


def fake_trial(monkeypatch, seconds):
    """Replace the timing by fixed medians; returns the list of trials run (their row counts)."""
    trials = []

    def medians(paths):
        trials.append(paths)
        return dict(seconds)

    monkeypatch.setattr(kernels, "interleaved_medians", medians)
    return trials


@pytest.mark.usefixtures("onednn_present")
@pytest.mark.parametrize("seconds,chosen", [
    ({"default": 1.0, "onednn": 0.9}, "onednn"),       # 10 % faster
    ({"default": 1.0, "onednn": 0.99}, "default"),     # 1 %: within the 2 % margin, a tie
    ({"default": 0.9, "onednn": 1.0}, "default"),
])
def test_auto_takes_the_path_its_trial_timed_faster(monkeypatch, seconds, chosen):
    fake_trial(monkeypatch, seconds)
    layer, x = layer_and_input()
    with torch.no_grad():
        assert resolve_kernel(x, layer)[0] == chosen
    [choice] = kernel_choices()
    assert choice["kernel"] == chosen and choice["seconds"] == seconds


@pytest.mark.usefixtures("onednn_present")
def test_auto_runs_one_trial_per_shape_bucket_and_thread_count(monkeypatch):
    trials = fake_trial(monkeypatch, {"default": 1.0, "onednn": 2.0})
    layer, _ = layer_and_input()
    threads = torch.get_num_threads()
    with torch.no_grad():
        for rows in (600, 700, 1024, 5000, 600):         # one bucket: 513 rows and more
            linear(torch.randn(rows, 8), layer)
        assert len(trials) == 1
        linear(torch.randn(300, 8), layer)               # 257-512 rows: a new bucket
        linear(torch.randn(600, 8), layer, "gelu")        # another epilogue
        linear(torch.randn(600, 8, 12), torch.nn.Linear(12, 8))   # another shape (rows = 4800)
        assert len(trials) == 4
        torch.set_num_threads(threads + 1)
        try:
            linear(torch.randn(600, 8), layer)           # the best path may change with the threads
        finally:
            torch.set_num_threads(threads)
    assert len(trials) == 5
    assert [(c["rows_bucket"], c["epilogue"], c["threads"]) for c in kernel_choices()] == [
        (1024, "none", threads), (512, "none", threads), (1024, "gelu", threads), (1024, "none", threads),
        (1024, "none", threads + 1)]


@pytest.mark.usefixtures("onednn_present")
def test_the_trial_times_at_most_the_trial_rows_of_the_input(monkeypatch):
    layer, _ = layer_and_input(in_features=16, out_features=16)
    calls = {"default": [], "onednn": []}
    compute = kernels.default_linear

    def counting(path):
        def run(x, layer, activation, residual, *options):
            calls[path].append(len(x))
            return compute(x, layer, activation, residual)
        return run

    monkeypatch.setattr(kernels, "default_linear", counting("default"))
    monkeypatch.setattr(kernels, "onednn_linear", counting("onednn"))
    with torch.no_grad():
        linear(torch.randn(3000, 16), layer)
    [choice] = kernel_choices()
    assert choice["trial_rows"] == kernels.TRIAL_ROWS == 1024
    assert calls[choice["kernel"]].pop() == 3000                                  # the call itself
    assert set(calls["default"]) == set(calls["onednn"]) == {1024}
    # one warm-up call of each, then at least TRIAL_ROUNDS, at most MAX_TRIAL_ROUNDS rounds
    assert len(calls["default"]) == len(calls["onednn"])
    assert kernels.TRIAL_ROUNDS + 1 <= len(calls["default"]) <= kernels.MAX_TRIAL_ROUNDS + 1


def test_the_trial_alternates_the_order_and_keeps_the_median(monkeypatch):
    # A fake clock: each call advances it by the next of its durations. "a" has one slow
    # outlier (9 s) that a mean would count; the median of 1, 9, 1 is 1.
    clock = [0.0]
    order = []
    durations = {"a": iter([0.5, 1.0, 9.0, 1.0]), "b": iter([0.5, 2.0, 2.0, 2.0])}

    def call(name):
        def run():
            order.append(name)
            clock[0] += next(durations[name])
        return run

    monkeypatch.setattr(kernels.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(kernels, "TRIAL_SECONDS", 0.0)            # the minimum of rounds: 3
    medians = kernels.interleaved_medians({"a": call("a"), "b": call("b")})
    assert order == ["a", "b", "a", "b", "b", "a", "a", "b"]      # warm-up, then ABBA...
    assert medians == {"a": 1.0, "b": 2.0}


# ---------------------------------------------------------------------------------------------
# Whole models


@pytest.mark.parametrize("name", ["timesformer_tiny", "xvit_tiny"])
def test_forced_paths_give_the_same_logits_and_gflops(name):
    model = tiny_model(name, ats=dict(sampler="its", ratio=0.6))
    clips = varied_clips()
    results = {}
    for kernel in ("default", "onednn", "auto"):
        with linear_options(kernel=kernel):
            with torch.no_grad():
                logits = model(clips)
            results[kernel] = (logits, clip_gflops(model, clips))
    for kernel in ("onednn", "auto"):
        assert torch.allclose(results[kernel][0], results["default"][0], atol=1e-5, rtol=0)
        assert torch.equal(results[kernel][1], results["default"][1])
