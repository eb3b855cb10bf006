"""The training loop's parts: parameter groups, the schedule, the epoch sampler, the metrics."""

import math

import pytest
import torch

from video_ats import build_model
from video_ats.engine.builders import EpochSampler
from video_ats.engine.distributed import DistContext
from video_ats.engine.metrics import accuracy_report, mean_class_accuracy, topk_accuracy
from video_ats.engine.optim import param_groups, warmup_cosine_factor


def test_norms_biases_and_embeddings_get_no_weight_decay():
    model = build_model("timesformer_tiny", num_classes=3)
    decay, no_decay = param_groups(model, weight_decay=1e-4)
    names = {id(p): n for n, p in model.named_parameters()}
    exempt = {names[id(p)] for p in no_decay["params"]}
    assert {"pos_embed", "time_embed", "cls_token", "blocks.0.norm1.weight", "blocks.0.attn.qkv.bias",
            "head.bias"} <= exempt
    assert not {names[id(p)] for p in decay["params"]} & exempt
    assert "blocks.0.attn.qkv.weight" in {names[id(p)] for p in decay["params"]}
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0


def test_warmup_is_linear_then_cosine_reaches_the_end_ratio():
    # 10 steps of warmup from 0.1 to 1, then cosine over 90 steps down to 0.01.
    factor = lambda step: warmup_cosine_factor(step, total_steps=100, warmup_steps=10, warmup_start_factor=0.1,
                                               end_factor=0.01)
    assert factor(0) == pytest.approx(0.1)
    assert factor(5) == pytest.approx(0.55)
    assert factor(10) == pytest.approx(1.0)
    assert factor(55) == pytest.approx(0.01 + 0.99 * 0.5)          # half way: cos(pi/2) = 0
    assert factor(100) == pytest.approx(0.01)


def test_training_sampler_gives_disjoint_equal_shares_in_a_seeded_order():
    shares = [EpochSampler(23, DistContext(rank=r, world_size=2), batch_size=3, shuffle=True, seed=5)
              for r in range(2)]
    for sampler in shares:
        sampler.set_epoch(1)
    indices = [list(sampler) for sampler in shares]
    assert len(indices[0]) == len(indices[1]) == 9                  # 23 // (3 x 2) = 3 batches each
    assert not set(indices[0]) & set(indices[1])
    again = EpochSampler(23, DistContext(rank=0, world_size=2), batch_size=3, shuffle=True, seed=5)
    again.set_epoch(1)
    assert list(again) == indices[0]
    again.set_epoch(2)
    assert list(again) != indices[0]


def test_training_sampler_resumes_mid_epoch():
    sampler = EpochSampler(20, DistContext(), batch_size=4, shuffle=True, seed=0)
    sampler.set_epoch(3)
    whole = list(sampler)
    sampler.set_epoch(3, start_batch=2)
    assert list(sampler) == whole[8:]


def test_evaluation_shards_cover_every_item_exactly_once():
    items = []
    for rank in range(3):
        items += list(EpochSampler(10, DistContext(rank=rank, world_size=3), batch_size=4, shuffle=False))
    assert items == list(range(10))


def test_gradient_accumulation_keeps_whole_optimizer_steps():
    sampler = EpochSampler(50, DistContext(), batch_size=4, shuffle=True, batches_multiple=3)
    assert sampler.batches_per_epoch() == 12                         # 12 of the 12 full batches


def test_accuracy_by_hand():
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    labels = torch.tensor([1, 1, 2, 2])
    assert topk_accuracy(scores, labels, 1) == pytest.approx(50.0)
    assert topk_accuracy(scores, labels, 2) == pytest.approx(75.0)
    assert topk_accuracy(scores, labels, 5) == pytest.approx(100.0)   # k capped at 3 classes
    # class 1: 1/2 right, class 2: 1/2 right
    assert mean_class_accuracy(scores, labels) == pytest.approx(50.0)


def test_mean_class_accuracy_weighs_classes_equally():
    scores = torch.tensor([[1.0, 0.0]] * 3 + [[1.0, 0.0]])
    labels = torch.tensor([0, 0, 0, 1])
    assert mean_class_accuracy(scores, labels) == pytest.approx(50.0)   # 100% and 0%
    assert topk_accuracy(scores, labels, 1) == pytest.approx(75.0)


def test_unlabelled_videos_are_left_out_of_the_metrics():
    report = accuracy_report(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, -1]))
    assert report["top1"] == 100.0 and report["num_labelled_videos"] == 1
    assert math.isnan(accuracy_report(torch.zeros(1, 2), torch.tensor([-1]))["top1"])
