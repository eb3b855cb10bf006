"""The two grid rules of inverse transform sampling: ``midpoint`` (ours) and ``official`` (the
released ATS code), against a loop-form reference and hand-computed cases."""

from fractions import Fraction

import pytest
import torch

from video_ats.ats import GRIDS, ATSOptions, grid_points, inverse_transform_sampling, sample_tokens


def kept(mask):
    return mask.nonzero()[:, -1].tolist()


def official(scores, points):
    scores = torch.tensor([scores], dtype=torch.float64)
    return inverse_transform_sampling(scores / scores.sum(), torch.tensor([points]), grid="official")


def midpoint(scores, budget):
    scores = torch.tensor([scores], dtype=torch.float64)
    return inverse_transform_sampling(scores / scores.sum(), torch.tensor([budget]))


def exact(value):
    """A float64 as an exact integer (every double is a multiple of 2**-1074)."""
    return int(Fraction(value) * 2 ** 1100)


def released_rule_reference(row, points):
    """The released rule for one row, written as a loop from its description.

    Sort ascending, cumulative sum c, (c - c_min) / (c_max - c_min), ``points`` points evenly
    from the smallest positive normalised value to 1 (both included), for each point the token
    whose normalised value is nearest (exactly; ties to the lower sorted index), each kept once.
    """
    order = sorted(range(len(row)), key=lambda i: row[i])
    cdf, total = [], 0.0
    for i in order:
        total += row[i]
        cdf.append(total)
    lowest, highest = cdf[0], cdf[-1]
    normalized = [(c - lowest) / (highest - lowest) for c in cdf]
    start = min(v for v in normalized if v > 0)
    if points == 1:
        grid = [1.0]
    else:
        grid = [start + i * (1.0 - start) / (points - 1) for i in range(points - 1)] + [1.0]
    values = [exact(v) for v in normalized]
    kept_tokens = set()
    for y in grid:
        target = exact(y)
        nearest = min(range(len(values)), key=lambda j: (abs(target - values[j]), j))
        kept_tokens.add(order[nearest])
    return kept_tokens


def random_rows(alpha, num_rows, num_tokens, zero_share, generator):
    """Dirichlet(alpha) rows (float64) with a share of tokens set to zero and renormalised."""
    rows = torch.distributions.Dirichlet(torch.full((num_tokens,), float(alpha))).sample((num_rows,)).double()
    if zero_share:
        zeros = torch.rand(num_rows, num_tokens, generator=generator) < zero_share
        zeros[:, 0] = False                                  # every row keeps some mass
        rows = rows.masked_fill(zeros, 0.0)
        rows = rows / rows.sum(-1, keepdim=True)
    return rows


def test_official_grid_matches_the_loop_reference_on_random_rows():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    compared = 0
    for alpha in (0.05, 0.3, 1.0, 5.0):
        for num_tokens in (12, 40, 64):
            for zero_share in (0.0, 0.25):
                rows = random_rows(alpha, 12, num_tokens, zero_share, generator)
                for points in (num_tokens, num_tokens + 7, 2 * num_tokens + 3):
                    budget = torch.full((len(rows),), points)
                    keep = inverse_transform_sampling(rows, budget, grid="official")
                    for row, mask in zip(rows.tolist(), keep):
                        assert set(kept(mask[None])) == released_rule_reference(row, points)
                        compared += 1
    # The DeiT-S size of the released code: 196 patch tokens, 196 grid points, and fewer
    # tokens left than grid points as in its later stages.
    for alpha in (0.05, 0.3, 1.0, 5.0):
        for num_tokens, zero_share in ((196, 0.0), (100, 0.3)):
            rows = random_rows(alpha, 2, num_tokens, zero_share, generator)
            keep = inverse_transform_sampling(rows, torch.full((2,), 196), grid="official")
            for row, mask in zip(rows.tolist(), keep):
                assert set(kept(mask[None])) == released_rule_reference(row, 196)
                compared += 1
    assert compared >= 200


def test_official_rows_with_different_grid_sizes_in_one_batch():
    generator = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    rows = random_rows(0.3, 6, 30, 0.2, generator)
    budget = torch.tensor([1, 5, 30, 31, 60, 90])
    keep = inverse_transform_sampling(rows, budget, grid="official")
    for row, points, mask in zip(rows.tolist(), budget.tolist(), keep):
        assert set(kept(mask[None])) == released_rule_reference(row, points)


def test_an_int_budget_is_the_same_grid_for_every_row():
    torch.manual_seed(2)
    rows = torch.distributions.Dirichlet(torch.full((50,), 0.5)).sample((8,)).double()
    assert torch.equal(inverse_transform_sampling(rows, 70, grid="official"),
                       inverse_transform_sampling(rows, torch.full((8,), 70), grid="official"))


def test_official_hand_computed_four_tokens():
    # cdf [0.1, 0.3, 0.6, 1.0] -> normalised [0, 2/9, 5/9, 1]; 4 points from 2/9 to 1:
    # 2/9, 13/27, 20/27, 1 -> nearest sorted indices 1, 2, 2, 3.
    assert kept(official([0.1, 0.2, 0.3, 0.4], 4)) == [1, 2, 3]
    # 2 points: 2/9 and 1.
    assert kept(official([0.1, 0.2, 0.3, 0.4], 2)) == [1, 3]


def test_official_keeps_more_than_midpoint_when_the_grid_is_wider_than_the_budget():
    # A later stage: 4 tokens left, midpoint budget K = 4, official grid G = 8 (P0 = 8).
    # cdf [0.04, 0.1, 0.4, 1.0]. midpoint: 1/8, 3/8, 5/8, 7/8 -> c >= at indices 2, 2, 3, 3.
    # official: normalised [0, 1/16, 3/8, 1], points 1/16 + i * (15/16) / 7 ->
    # 0.0625, 0.196, 0.330, 0.464, 0.598, 0.732, 0.866, 1 -> nearest 1, 1, 2, 2, 2, 3, 3, 3.
    scores = [0.04, 0.06, 0.30, 0.60]
    assert kept(midpoint(scores, 4)) == [2, 3]
    assert kept(official(scores, 8)) == [1, 2, 3]


def test_official_keeps_the_lowest_positive_token_next_to_zero_score_tokens():
    # cdf [0, 0.1, 0.3, 1] is already normalised; points 0.1 and 1 -> the 0.1 token and the top.
    assert kept(official([0.0, 0.1, 0.2, 0.7], 2)) == [1, 3]
    # midpoint, K = 2: 1/4 and 3/4 -> c >= at the 0.2 token and the top.
    assert kept(midpoint([0.0, 0.1, 0.2, 0.7], 2)) == [2, 3]


def test_official_ties_go_to_the_lower_sorted_index():
    # A zero-score token and four equal ones: cdf [0, 1/4, 1/2, 3/4, 1] (exact in binary). Three
    # points from 1/4 to 1: 1/4, 5/8, 1; 5/8 is exactly between 1/2 and 3/4 -> the lower
    # (sorted index 2, token 2; equal scores keep their order).
    assert kept(official([0.0, 1.0, 1.0, 1.0, 1.0], 3)) == [1, 2, 4]


def test_absent_tokens_take_no_part_unlike_zero_score_tokens():
    # The row [0.1, 0.2, 0.3, 0.4] keeps sorted indices 1, 3 with 2 points (hand-computed above).
    # Padded with two absent slots it keeps the same tokens; had the two slots been present with
    # score 0, c_min would drop to 0 and the lowest token (0.1) would become a grid point.
    row = torch.tensor([[0.1, 0.0, 0.2, 0.3, 0.0, 0.4]], dtype=torch.float64)
    present = torch.tensor([[True, False, True, True, False, True]])
    assert kept(inverse_transform_sampling(row, torch.tensor([2]), "official", token_valid=present)) == [2, 5]
    assert kept(inverse_transform_sampling(row, torch.tensor([2]), "official")) == [0, 5]


def test_padding_a_row_with_absent_tokens_does_not_change_its_selection():
    generator = torch.Generator().manual_seed(10)
    torch.manual_seed(10)
    rows = random_rows(0.5, 32, 40, 0.0, generator)
    padded = torch.cat([rows, torch.zeros(32, 9, dtype=torch.float64)], dim=1)
    present = torch.arange(49) < 40
    for points in (10, 40, 64):
        alone = inverse_transform_sampling(rows, points, "official")
        with_padding = inverse_transform_sampling(padded, points, "official", token_valid=present.expand(32, -1))
        assert torch.equal(with_padding[:, :40], alone) and not with_padding[:, 40:].any()


@pytest.mark.parametrize("points", [1, 2, 7, 64, 200])
def test_official_always_keeps_the_highest_scoring_token(points):
    torch.manual_seed(3)
    for alpha in (0.05, 1.0, 5.0):
        rows = torch.distributions.Dirichlet(torch.full((64,), alpha)).sample((32,)).double()
        keep = inverse_transform_sampling(rows, torch.full((32,), points), grid="official")
        assert bool(keep.gather(1, rows.argmax(dim=1, keepdim=True)).all())


@pytest.mark.parametrize("points", [2, 30, 64, 256])
def test_official_never_keeps_the_lowest_of_distinct_positive_scores(points):
    torch.manual_seed(4)
    for alpha in (0.05, 1.0, 5.0):
        rows = torch.distributions.Dirichlet(torch.full((30,), alpha)).sample((32,)).double()
        assert bool((rows > 0).all())
        keep = inverse_transform_sampling(rows, torch.full((32,), points), grid="official")
        assert not keep.gather(1, rows.argmin(dim=1, keepdim=True)).any()


@pytest.mark.parametrize("points", [2, 30, 256])
def test_official_keeps_the_lowest_positive_token_when_zero_score_tokens_are_present(points):
    generator = torch.Generator().manual_seed(5)
    torch.manual_seed(5)
    rows = random_rows(1.0, 32, 30, 0.3, generator)
    assert bool((rows == 0).any(dim=1).all())
    lowest_positive = rows.masked_fill(rows == 0, float("inf")).argmin(dim=1, keepdim=True)
    keep = inverse_transform_sampling(rows, torch.full((32,), points), grid="official")
    assert bool(keep.gather(1, lowest_positive).all())


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("points", [1, 4, 50])
def test_a_row_with_one_valid_token_keeps_it(grid, points):
    rows = torch.tensor([[0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    keep = inverse_transform_sampling(rows, torch.full((2,), points), grid=grid)
    assert keep.tolist() == [[False, False, True, False], [True, False, False, False]]
    single = inverse_transform_sampling(torch.ones(3, 1, dtype=torch.float64), torch.full((3,), points), grid=grid)
    assert single.tolist() == [[True]] * 3


def test_official_on_a_row_without_mass_or_grid_keeps_nothing():
    rows = torch.tensor([[0.0, 0.0, 0.0], [0.2, 0.3, 0.5]], dtype=torch.float64)
    assert not inverse_transform_sampling(rows, torch.tensor([5, 0]), grid="official").any()


def test_official_permuting_tokens_permutes_the_selection():
    torch.manual_seed(6)
    rows = torch.distributions.Dirichlet(torch.full((40,), 0.3)).sample((16,)).double()
    rows[:, :6] = 0.0
    rows = rows / rows.sum(-1, keepdim=True)
    permutation = torch.randperm(40)
    for points in (12, 40, 90):
        keep = inverse_transform_sampling(rows, torch.full((16,), points), grid="official")
        keep_permuted = inverse_transform_sampling(rows[:, permutation], torch.full((16,), points), grid="official")
        assert torch.equal(keep_permuted, keep[:, permutation])


def test_official_never_keeps_zero_score_tokens():
    generator = torch.Generator().manual_seed(7)
    torch.manual_seed(7)
    for alpha in (0.05, 1.0, 5.0):
        rows = random_rows(alpha, 32, 50, 0.4, generator)
        for points in (8, 50, 150):
            keep = inverse_transform_sampling(rows, torch.full((32,), points), grid="official")
            assert not (keep & (rows == 0)).any()


def test_official_keeps_no_more_than_its_grid_points_or_valid_tokens():
    generator = torch.Generator().manual_seed(8)
    torch.manual_seed(8)
    for alpha in (0.05, 1.0, 5.0, 50.0):
        rows = random_rows(alpha, 64, 40, 0.5, generator)
        points = torch.randint(1, 120, (64,), generator=generator)
        counts = inverse_transform_sampling(rows, points, grid="official").sum(-1)
        assert bool((counts <= points).all())
        assert bool((counts <= (rows > 0).sum(-1)).all())
        assert bool((counts >= 1).all())


def test_the_default_grid_is_midpoint():
    torch.manual_seed(9)
    rows = torch.distributions.Dirichlet(torch.full((30,), 0.5)).sample((8,)).double()
    budget = torch.full((8,), 20)
    assert torch.equal(inverse_transform_sampling(rows, budget), inverse_transform_sampling(rows, budget, "midpoint"))


@pytest.mark.parametrize("reference,ratio,num_tokens,expected", [
    (196, 1.0, None, 196),      # the released code's n_ref_tokens - 1 for DeiT-S
    (64, 0.6, None, 38),        # 38.4 -> 38
    (64, 0.5, None, 32),
    (100, 0.125, None, 13),     # 12.5 -> 13 (round half up, as the midpoint budget)
    (64, 0.05, None, 8),        # the floor of min_tokens
    (64, 0.3, 100, 100),        # a fixed num_tokens is the grid size, not capped by P0
])
def test_official_grid_points(reference, ratio, num_tokens, expected):
    assert grid_points(reference, ratio, num_tokens) == expected


def test_unknown_grid_lists_the_valid_ones():
    rows = torch.ones(1, 3, dtype=torch.float64) / 3
    with pytest.raises(ValueError, match=r"grid 'nearest'.*\['midpoint', 'official'\]"):
        inverse_transform_sampling(rows, torch.tensor([3]), grid="nearest")
    with pytest.raises(ValueError, match=r"grid 'nearest'.*\['midpoint', 'official'\]"):
        sample_tokens("its", rows, torch.tensor([3]), torch.ones(1, 3, dtype=torch.bool), grid="nearest")
    with pytest.raises(ValueError, match=r"grid 'nearest'.*\['midpoint', 'official'\]"):
        ATSOptions(grid="nearest")._check()


@pytest.mark.parametrize("sampler", ["topk", "random"])
def test_official_grid_with_another_sampler_is_refused(sampler):
    rows = torch.ones(1, 3, dtype=torch.float64) / 3
    with pytest.raises(ValueError, match=rf"grid 'official' is a rule of the 'its' sampler, not of '{sampler}'.*"
                                         r"\['midpoint', 'official'\]"):
        sample_tokens(sampler, rows, torch.tensor([3]), torch.ones(1, 3, dtype=torch.bool), rows, grid="official")
    with pytest.raises(ValueError, match=rf"not of '{sampler}'"):
        ATSOptions(sampler=sampler, grid="official")._check()
