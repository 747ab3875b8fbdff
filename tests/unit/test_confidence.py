"""Confidence in a label: consistent with the threshold, never below 50%."""

import numpy as np
import pytest

from pancscan.detection.predict import label_confidence


@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.5, 0.74, 0.9])
def test_confidence_is_half_at_the_threshold_and_rises_to_one_at_either_end(threshold):
    assert label_confidence(threshold, threshold) == pytest.approx(0.5)
    assert label_confidence(1.0, threshold) == pytest.approx(1.0)
    assert label_confidence(0.0, threshold) == pytest.approx(1.0)


@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.74])
def test_confidence_never_falls_below_half_and_grows_away_from_the_threshold(threshold):
    probabilities = np.linspace(0, 1, 201)
    confidence = np.array([label_confidence(p, threshold) for p in probabilities])
    assert confidence.min() >= 0.5
    below, above = probabilities < threshold, probabilities >= threshold
    assert np.all(np.diff(confidence[below]) < 0) and np.all(np.diff(confidence[above]) > 0)


def test_the_example_from_the_issue_now_reads_above_half():
    # "No cancer detected" with probability 0.555 at threshold 0.738 read "confidence 44.5%"
    assert label_confidence(0.555, 0.738) == pytest.approx(0.5 + 0.5 * (0.738 - 0.555) / 0.738)
    assert label_confidence(0.555, 0.738) > 0.5
