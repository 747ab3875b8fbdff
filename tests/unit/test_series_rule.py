"""The series rule over millimetres: which slices are sampled, and the strongest stretch."""

import numpy as np
import pytest

from pancscan.detection.series import extent_surprise, sample_on_grid, scored_extent_mm, strongest_stretch


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
