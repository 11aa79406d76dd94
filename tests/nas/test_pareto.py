import pytest

from snnas.nas.search.pareto import hypervolume, pareto_mask


def test_pareto_mask_against_a_hand_drawn_front():
    acc = [0.9, 0.8, 0.7, 0.85, 0.6, 0.9]
    energy = [5.0, 2.0, 1.0, 3.0, 1.5, 6.0]
    # (0.6, 1.5) is dominated by (0.7, 1.0); (0.9, 6.0) by (0.9, 5.0)
    assert pareto_mask(acc, energy) == [True, True, True, True, False, False]


def test_duplicates_stay_on_the_front_together():
    assert pareto_mask([0.5, 0.5], [1.0, 1.0]) == [True, True]


def test_hypervolume_of_a_staircase_by_hand():
    # front (e=1, a=0.5), (e=2, a=0.7), (e=4, a=0.9); reference (a=0, e=5)
    # = 1*0.5 + 2*0.7 + 1*0.9 = 2.8
    assert hypervolume([0.5, 0.7, 0.9], [1, 2, 4], ref_accuracy=0.0, ref_energy=5.0) == pytest.approx(2.8)


def test_dominated_and_out_of_reference_points_add_nothing():
    base = hypervolume([0.5, 0.7, 0.9], [1, 2, 4], ref_accuracy=0.0, ref_energy=5.0)
    more = hypervolume([0.5, 0.7, 0.9, 0.6, 0.95], [1, 2, 4, 3, 7], ref_accuracy=0.0, ref_energy=5.0)
    assert more == pytest.approx(base)
    assert hypervolume([0.1], [1.0], ref_accuracy=0.2, ref_energy=5.0) == 0.0
