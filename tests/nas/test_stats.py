import pytest

from snnas.nas.search.stats import bootstrap_ci, kendall_tau, spearman_rho


def test_kendall_tau_by_hand():
    # pairs: (1,2) C, (1,3) C, (1,4) C, (2,3) D, (2,4) C, (3,4) C -> (5 - 1) / 6
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0


def test_kendall_tau_b_corrects_ties():
    # x ties on (1,2): C = 2 ((1,3),(2,3)), D = 0, ties_x = 1 -> 2 / sqrt(3 * 2)
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / 6 ** 0.5)


def test_spearman_uses_average_ranks():
    assert spearman_rho([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman_rho([1, 2, 3], [1, 1, 2]) == pytest.approx(0.8660254, rel=1e-6)


def test_bootstrap_interval_contains_the_statistic_of_a_clean_relation():
    x = list(range(30))
    y = [v + (3 if v % 4 == 0 else 0) for v in x]
    lo, hi = bootstrap_ci(x, y, kendall_tau, resamples=300)
    assert lo <= kendall_tau(x, y) <= hi <= 1.0
