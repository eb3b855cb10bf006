"""The samplers and budgets, against hand-computed cases."""

import pytest
import torch

from video_ats.ats import (SAMPLERS, inverse_transform_sampling, normalize_scores, random_sampling, sample_tokens,
                           token_budget, topk_sampling)


def kept(mask):
    return mask.nonzero()[:, -1].tolist()


def its(scores, budget):
    scores = torch.tensor([scores], dtype=torch.float64)
    return inverse_transform_sampling(scores / scores.sum(), torch.tensor([budget]))


def test_its_hand_computed_two_samples():
    # sorted cdf = [0.1, 0.3, 0.6, 1.0]; grid 1/4, 3/4 -> sorted indices 1 and 3.
    assert kept(its([0.1, 0.2, 0.3, 0.4], 2)) == [1, 3]


def test_its_hand_computed_three_samples():
    # grid 1/6, 1/2, 5/6 -> cdf indices 1, 2, 3.
    assert kept(its([0.1, 0.2, 0.3, 0.4], 3)) == [1, 2, 3]


def test_its_maps_back_through_the_sort():
    # Same scores, shuffled: the kept tokens follow their scores, not their slots.
    assert kept(its([0.4, 0.1, 0.3, 0.2], 2)) == [0, 3]


@pytest.mark.parametrize("num_tokens,budget", [(10, 10), (10, 4), (196, 49), (196, 1), (7, 3)])
def test_uniform_scores_keep_exactly_k(num_tokens, budget):
    assert its([1.0] * num_tokens, budget).sum().item() == budget


@pytest.mark.parametrize("budget", [1, 5, 16])
def test_one_hot_score_keeps_exactly_that_token(budget):
    scores = [0.0] * 16
    scores[11] = 1.0
    assert kept(its(scores, budget)) == [11]


def test_every_token_with_score_at_least_one_over_k_is_kept():
    torch.manual_seed(0)
    for budget in (2, 5, 10, 30):
        probabilities = torch.distributions.Dirichlet(torch.full((64,), 0.02)).sample((50,))
        keep = inverse_transform_sampling(probabilities.double(), torch.full((50,), budget))
        heavy = probabilities >= 1.0 / budget
        assert heavy.any() and bool(keep[heavy].all()), f"a token with score >= 1/{budget} was dropped"


def test_kept_count_never_exceeds_budget_and_adapts():
    torch.manual_seed(1)
    for alpha in (0.05, 0.5, 5.0):
        probabilities = torch.distributions.Dirichlet(torch.full((100,), alpha)).sample((64,)).double()
        budget = torch.randint(1, 101, (64,))
        counts = inverse_transform_sampling(probabilities, budget).sum(-1)
        assert bool((counts <= budget).all())
        assert bool((counts >= 1).all())
    # Peaked distributions keep fewer tokens than flat ones at the same budget.
    peaked = torch.distributions.Dirichlet(torch.full((100,), 0.05)).sample((64,)).double()
    flat = torch.distributions.Dirichlet(torch.full((100,), 50.0)).sample((64,)).double()
    budget = torch.full((64,), 50)
    assert inverse_transform_sampling(peaked, budget).sum(-1).float().mean() < \
        inverse_transform_sampling(flat, budget).sum(-1).float().mean()


def test_permuting_tokens_permutes_the_selection():
    torch.manual_seed(2)
    probabilities = torch.distributions.Dirichlet(torch.full((40,), 0.3)).sample((8,)).double()
    budget = torch.full((8,), 12)
    permutation = torch.randperm(40)
    keep = inverse_transform_sampling(probabilities, budget)
    keep_permuted = inverse_transform_sampling(probabilities[:, permutation], budget)
    assert torch.equal(keep_permuted, keep[:, permutation])


def test_zero_score_tokens_are_never_picked():
    scores = torch.tensor([[0.0, 0.5, 0.0, 0.5, 0.0]], dtype=torch.float64)
    assert kept(inverse_transform_sampling(scores, torch.tensor([5]))) == [1, 3]


def test_rows_are_independent():
    probabilities = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25]], dtype=torch.float64)
    keep = inverse_transform_sampling(probabilities, torch.tensor([2, 4]))
    assert kept(keep[:1]) == [1, 3]
    assert keep[1].all()


def test_topk_keeps_the_k_highest_valid_tokens():
    scores = torch.tensor([[0.1, 0.9, 0.3, 0.8, 0.5]])
    valid = torch.tensor([[True, True, True, False, True]])
    assert kept(topk_sampling(scores, torch.tensor([2]), valid)) == [1, 4]


def test_topk_breaks_ties_by_position():
    assert kept(topk_sampling(torch.ones(1, 6), torch.tensor([3]), torch.ones(1, 6, dtype=torch.bool))) == [0, 1, 2]


def test_random_keeps_exactly_k_valid_tokens():
    keys = torch.rand(4, 20, generator=torch.Generator().manual_seed(0)).double()
    valid = torch.ones(4, 20, dtype=torch.bool)
    valid[:, 15:] = False
    keep = random_sampling(keys, torch.tensor([1, 5, 15, 20]), valid)
    assert keep.sum(-1).tolist() == [1, 5, 15, 15]
    assert not keep[:, 15:].any()


def test_sample_tokens_never_keeps_invalid_tokens():
    probabilities = normalize_scores(torch.rand(3, 10), torch.ones(3, 10, dtype=torch.bool))
    valid = torch.rand(3, 10) > 0.5
    for sampler in SAMPLERS:
        keep = sample_tokens(sampler, probabilities, torch.full((3,), 10), valid, torch.rand(3, 10).double())
        assert not (keep & ~valid).any()


def test_unknown_sampler_lists_the_valid_ones():
    with pytest.raises(ValueError, match="its.*topk.*random"):
        sample_tokens("gumbel", torch.ones(1, 3), torch.tensor([1]), torch.ones(1, 3, dtype=torch.bool))


@pytest.mark.parametrize("num_valid,ratio,expected", [
    (196, 0.5, 98), (196, 0.7, 137), (100, 0.125, 13), (10, 0.05, 8), (5, 0.5, 5), (196, 1.0, 196), (9, 0.5, 8),
])
def test_ratio_budget(num_valid, ratio, expected):
    # K = min(N, max(8, round_half_up(ratio * N))): 137.2 -> 137, 12.5 -> 13, floor 8, cap N.
    assert token_budget(torch.tensor([num_valid]), ratio=ratio).item() == expected


def test_fixed_budget_is_capped_by_the_tokens_present():
    assert token_budget(torch.tensor([50, 20]), num_tokens=30).tolist() == [30, 20]


def test_normalize_falls_back_to_uniform_when_all_scores_vanish():
    valid = torch.tensor([[True, True, False, True]])
    probabilities = normalize_scores(torch.zeros(1, 4), valid)
    assert torch.allclose(probabilities, torch.tensor([[1 / 3, 1 / 3, 0.0, 1 / 3]], dtype=torch.float64))
