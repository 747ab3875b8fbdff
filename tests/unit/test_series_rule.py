"""The series rule over millimetres: which slices are sampled, and the strongest stretch."""

import math

import numpy as np
import pytest

from pancscan.detection.series import extent_surprise, sample_on_grid, scored_extent_mm, strongest_stretch, window_means


def test_a_thin_series_is_sampled_every_grid_step_and_a_thick_one_whole():
    thin = np.arange(300) * 0.8
    sampled = sample_on_grid(thin, 4.0)
    assert np.allclose(np.diff(thin[sampled])[:-1], 4.0)  # every fifth slice
    assert sampled[0] == 0 and sampled[-2:] == [295, 299]  # and the last, nearest to the last grid point
    assert sample_on_grid(np.arange(60) * 5.0, 4.0) == list(range(60))
    assert sample_on_grid(thin, 0.0) == list(range(300))


def test_each_grid_point_takes_its_nearest_slice_once_across_gaps():
    positions = np.array([0.0, 1.0, 2.0, 30.0, 31.0])  # slices missing between 2 and 30 mm
    assert sample_on_grid(positions, 5.0) == [0, 2, 3]  # 0 -> 0; 5, 10, 15 -> 2 (once); 20, 25, 30 -> 3


@pytest.mark.parametrize("spacing", [0.8, 1.5, 2.5, 5.0])
def test_the_scan_logit_of_one_profile_barely_depends_on_the_slice_spacing(spacing):
    # a normal background with a 15 mm tumour: logits along the axis as a function of millimetres
    def profile(z):
        return np.where(np.abs(z - 100.0) <= 7.5, 2.0, -3.0 + 0.5 * np.sin(z / 7.0))

    z = np.arange(0, 200, spacing)
    sampled = sample_on_grid(z, 5.0)
    logit, stretch = strongest_stretch(z[sampled], profile(z[sampled]), 10.0)
    assert logit == pytest.approx(2.0, abs=0.01)
    assert np.abs(z[sampled][stretch] - 100).max() <= 5.0 + spacing


def test_a_stray_slice_loses_to_a_stretch_of_suspicious_slices():
    z = np.arange(20) * 2.5
    logits = np.full(20, -3.0)
    logits[4] = 3.0  # one slice alone
    logits[12:17] = 1.0  # 10 mm of suspicious slices
    logit, stretch = strongest_stretch(z, logits, 10.0)
    assert logit == pytest.approx(1.0)
    assert np.flatnonzero(stretch).tolist() == [12, 13, 14, 15, 16]
    assert strongest_stretch(z, logits, 0.0)[0] == 3.0  # a window of nothing: the most suspicious slice


def test_slices_not_scored_leave_the_stretch():
    z = np.arange(5) * 2.5
    logits = np.array([np.nan, 1.0, np.nan, 1.0, -5.0])
    logit, stretch = strongest_stretch(z, logits, 5.0)
    assert logit == pytest.approx(1.0) and not stretch[0] and not stretch[2]
    assert strongest_stretch(z, np.full(5, np.nan), 5.0)[0] == float("-inf")


def test_the_same_stretch_counts_for_less_in_a_longer_series():
    short, long = (extent_surprise(2.0, extent, 2.5, -1.7, 1.4) for extent in (50.0, 500.0))
    assert short > long > 0
    assert extent_surprise(3.0, 500.0, 2.5, -1.7, 1.4) > long  # a stronger stretch counts for more
    # one draw: -log of the chance that one normal stretch is as strong
    one = extent_surprise(-1.7, 2.5, 2.5, -1.7, 1.4)
    assert one == pytest.approx(-np.log(0.5))


def test_the_scored_extent_is_the_length_the_scored_slices_stand_for():
    z = np.arange(10) * 2.5
    assert scored_extent_mm(z, np.ones(10, bool)) == pytest.approx(25.0)
    assert scored_extent_mm(z, np.arange(10) < 5) == pytest.approx(12.5)
    assert scored_extent_mm([0.0], [True]) == 0.0


# --- exact values at the edges (each kills mutants that the profile tests above let through) -------

def test_the_chance_of_a_stretch_this_strong_is_the_normal_tail_over_every_stretch_of_the_extent():
    from statistics import NormalDist

    for logit, extent, stretch, mean, sd in [(-1.0, 40.0, 10.0, -1.0, 2.0), (1.5, 25.0, 5.0, -1.74, 1.36), (0.0, 3.0, 10.0, -2.0, 0.5)]:
        draws = max(1.0, extent / stretch)
        expected = -math.log(1 - NormalDist(mean, sd).cdf(logit) ** draws)
        assert extent_surprise(logit, extent, stretch, mean, sd) == pytest.approx(expected, rel=1e-9)


def test_a_stretch_far_weaker_than_any_normal_one_scores_zero_not_an_error():
    assert extent_surprise(-100.0, 300.0, 2.5, -1.74, 1.36) == pytest.approx(0.0, abs=1e-12)  # its tail is exactly 1


def test_grid_points_take_the_lower_slice_on_a_tie_and_the_last_slice_within_half_a_step():
    assert sample_on_grid([0.0, 1.0, 2.0, 3.0, 4.0], 1.5) == [0, 1, 3, 4]  # 1.5 is as near 1 as 2: the lower
    assert sample_on_grid([0.0, 2.5, 5.0, 6.4], 2.5) == [0, 1, 2, 3]  # 6.4 is nearest to 7.5, within half a step of 5 + 2.5


def test_the_grid_samples_short_series_and_fine_grids_too():
    assert sample_on_grid([7.0], 2.5) == [0]
    assert sample_on_grid([0.0, 10.0], 30.0) == [0]  # two slices, one grid point
    assert sample_on_grid(np.arange(11) * 0.1, 0.5) == [0, 5, 10]  # a grid finer than 1 mm


def test_positions_may_be_dicom_decimal_strings_and_unscored_slices_none():
    positions = ["0", "2.5", "5.0", "7.5"]  # DS values, as a DICOM header gives them
    assert sample_on_grid(positions, 5.0) == [0, 2]
    assert scored_extent_mm(positions, [True, True, False, True]) == pytest.approx(7.5)
    logit, stretch = strongest_stretch(positions, [0.0, None, 2.0, 1.0], 5.0)  # None: not scored
    assert logit == pytest.approx(1.5) and stretch.tolist() == [False, False, True, True]
    assert window_means(positions, [0.0, 1.0, 2.0, 3.0], 5.0).tolist() == pytest.approx([0.5, 1.0, 2.0, 2.5])


def test_the_scored_extent_gives_each_slice_its_half_gaps_and_the_ends_a_whole_gap():
    positions = [0.0, 2.0, 6.0, 7.0]  # gaps 2, 4, 1: shares 2, 3, 2.5, 1
    assert scored_extent_mm(positions, [True] * 4) == pytest.approx(8.5)
    assert scored_extent_mm(positions, [True, False, True, False]) == pytest.approx(4.5)
    assert scored_extent_mm(positions, [1, 0, 1, 0]) == pytest.approx(4.5)  # flags, not indices
    assert scored_extent_mm(positions, [False, False, False, True]) == pytest.approx(1.0)
    assert scored_extent_mm([3.0], [True]) == 0.0


def test_a_window_holds_the_slices_exactly_half_its_width_away_and_no_further():
    positions, logits = [0.0, 4.0, 5.0, 9.5], [1.0, 2.0, 3.0, 4.0]
    assert window_means(positions, logits, 8.0).tolist() == pytest.approx([1.5, 2.0, 2.5, 4.0])  # 4 mm in, 4.5 mm out
    logit, stretch = strongest_stretch(positions, logits, 9.0)  # half-width 4.5: 5.0 and 9.5 meet
    assert logit == pytest.approx(3.5) and stretch.tolist() == [False, False, True, True]
    assert strongest_stretch(positions, [np.nan] * 4, 9.0)[0] == float("-inf")


def test_merged_configurations_keep_each_series_on_its_own_parts_logits():
    from pancscan_model.realistic_series import Configurations, Rebuilt, merged

    def part(group, logits):
        series = Rebuilt(group, 1, np.array([1, 0]), np.array([0.0, 1.5]))
        return Configurations({"a": [series], "b": [series]}, {"a": np.array(logits), "b": np.array(logits[::-1])})

    both = merged([part("one", [1.0, 2.0, 3.0]), part("two", [4.0, 5.0])])

    assert [s.group for s in both.by_name["a"]] == ["one", "two"]
    assert [both.logits["a"][s.index].tolist() for s in both.by_name["a"]] == [[2.0, 1.0], [5.0, 4.0]]
    assert [both.logits["b"][s.index].tolist() for s in both.by_name["b"]] == [[2.0, 3.0], [4.0, 5.0]]
