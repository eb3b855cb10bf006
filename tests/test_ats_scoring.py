"""Significance scores and the reproducible random keys."""

import math

import pytest
import torch

from video_ats.ats import (attention_received, cls_attention, content_key, full_attention, hashed_uniform,
                           normalize_scores, token_scores, value_norms)


def test_cls_vnorm_score_by_hand():
    # Two heads, CLS + 2 patches. Head-summed CLS attention on the patches: 0.7 and 0.7.
    attention = torch.tensor([[0.2, 0.3, 0.5], [0.4, 0.4, 0.2]])
    v = torch.zeros(2, 3, 2)
    v[0, 1] = torch.tensor([3.0, 0.0])
    v[1, 1] = torch.tensor([0.0, 4.0])     # token 1: concatenated value (3, 0, 0, 4), norm 5
    v[0, 2] = torch.tensor([1.0, 0.0])     # token 2: norm 1
    assert torch.allclose(token_scores(attention, v, "cls_vnorm"), torch.tensor([3.5, 0.7]))
    assert torch.allclose(token_scores(attention, v, "cls"), torch.tensor([0.7, 0.7]))


def test_value_norm_concatenates_heads():
    v = torch.tensor([[[3.0]], [[4.0]]])    # (h=2, N=1, d_h=1)
    assert value_norms(v).item() == pytest.approx(5.0)


def test_cls_row_equals_the_first_row_of_full_attention():
    torch.manual_seed(0)
    q, k = torch.randn(2, 3, 7, 5), torch.randn(2, 3, 7, 5)
    scale = 5 ** -0.5
    full = (q @ k.transpose(-2, -1) * scale).softmax(-1)
    assert torch.allclose(cls_attention(q[..., :1, :], k, scale), full[..., 0, :], atol=1e-6)


def test_cls_row_ignores_invalid_keys():
    q, k = torch.randn(1, 1, 4, 2), torch.randn(1, 1, 4, 2)
    valid = torch.tensor([[True, True, False, True]])
    row = cls_attention(q[..., :1, :], k, 1.0, valid)
    assert row[0, 0, 2].item() == 0.0
    assert row.sum().item() == pytest.approx(1.0)


def test_self_attn_score_sums_attention_received_over_valid_queries():
    torch.manual_seed(0)
    q, k = torch.randn(1, 2, 4, 3), torch.randn(1, 2, 4, 3)
    valid = torch.tensor([[True, True, True, False]])
    received = attention_received(q, k, 0.5, "self_attn", valid)
    full = full_attention(q, k, 0.5, valid)
    expected = full[:, :, :3, :].sum(dim=-2)          # queries 0..2 only
    assert torch.allclose(received, expected, atol=1e-6)
    assert received[..., 3].abs().max().item() == 0.0


def test_invalid_tokens_score_zero():
    attention = torch.full((1, 4), 0.25)
    v = torch.ones(1, 4, 2)
    scores = token_scores(attention, v, "cls_vnorm", torch.tensor([True, False, True]))
    assert scores[1].item() == 0.0 and scores[0].item() == pytest.approx(0.25 * math.sqrt(2))


def test_normalized_scores_sum_to_one():
    probabilities = normalize_scores(torch.tensor([[1.0, 3.0, 4.0]]), torch.ones(1, 3, dtype=torch.bool))
    assert probabilities.tolist() == [[0.125, 0.375, 0.5]]


def test_content_key_does_not_depend_on_batch_mates():
    torch.manual_seed(0)
    clips = torch.randn(3, 3, 4, 16, 16)
    together = content_key(clips)
    alone = torch.cat([content_key(clips[i:i + 1]) for i in range(3)])
    assert torch.equal(together, alone)
    assert len(set(together.tolist())) == 3


def test_hashed_uniform_is_reproducible_and_roughly_uniform():
    keys = torch.arange(200)
    a, b = hashed_uniform(keys, 500, salt=7), hashed_uniform(keys, 500, salt=7)
    assert torch.equal(a, b)
    assert not torch.equal(a, hashed_uniform(keys, 500, salt=8))
    assert float(a.min()) >= 0.0 and float(a.max()) < 1.0
    histogram = torch.histc(a.float(), bins=10, min=0, max=1) / a.numel()
    assert float((histogram - 0.1).abs().max()) < 0.01
