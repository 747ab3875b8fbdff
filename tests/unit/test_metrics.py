import numpy as np
import pytest

from pancscan_model import metrics


def test_auroc_of_perfect_random_and_inverted_scores():
    labels = np.array([0, 0, 1, 1])
    assert metrics.auroc(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert metrics.auroc(labels, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert metrics.auroc(labels, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5


def test_auroc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = rng.normal(labels * 0.7, 1.0).round(1)  # rounding makes ties
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairwise = np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))
    assert metrics.auroc(labels, scores) == pytest.approx(pairwise)


def test_platt_scaling_recovers_a_known_logistic_model():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, 20000)
    labels = rng.random(20000) < 1 / (1 + np.exp(-(0.5 * logits - 1.0)))
    a, b = metrics.fit_platt(logits, labels)
    assert a == pytest.approx(0.5, abs=0.05) and b == pytest.approx(-1.0, abs=0.08)


def test_threshold_keeps_the_target_specificity():
    rng = np.random.default_rng(2)
    labels = np.r_[np.zeros(100), np.ones(100)].astype(int)
    scores = np.r_[rng.random(100), rng.random(100) + 0.5]
    t = metrics.threshold_at_specificity(labels, scores, 0.95)
    assert np.mean(scores[labels == 0] < t) >= 0.95
    assert np.mean(scores[labels == 0] < t) <= 0.96  # the lowest such threshold


def test_ece_is_zero_when_calibrated_and_large_when_not():
    labels = np.r_[np.ones(30), np.zeros(70)]
    assert metrics.expected_calibration_error(labels, np.full(100, 0.3)) == pytest.approx(0.0)
    assert metrics.expected_calibration_error(labels, np.full(100, 0.9)) == pytest.approx(0.6)


def test_patient_bootstrap_interval_contains_the_estimate():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(20), 10)
    values = rng.normal(1.0, 1.0, 200)
    lo, hi = metrics.patient_bootstrap(lambda i: values[i].mean(), groups, n=300)
    assert lo < values.mean() < hi
    assert hi - lo < 1.0


def test_platt_fit_stays_finite_when_logits_saturate_the_start():
    # Large, overlapping logits sent plain Newton's method to a = -189071 (seen on series scores).
    from pancscan_model.metrics import fit_platt

    rng = np.random.default_rng(0)
    logits = np.concatenate([rng.normal(2.5, 2.0, 24), rng.normal(3.5, 2.5, 24)])
    labels = np.r_[np.zeros(24), np.ones(24)]
    a, b = fit_platt(logits, labels)
    assert 0 < a < 2 and abs(b) < 5


def test_balanced_weights_give_both_classes_the_same_total():
    labels = np.array([1] * 30 + [0] * 10)
    weights = metrics.balanced_weights(labels)
    assert weights[labels == 1].sum() == pytest.approx(weights[labels == 0].sum())
    assert weights.mean() == pytest.approx(1.0)


def test_weighted_platt_is_calibrated_at_equal_prevalence_whatever_the_class_ratio():
    rng = np.random.default_rng(0)
    labels = np.array([1] * 3000 + [0] * 1000)
    logits = np.where(labels == 1, rng.normal(1, 1, labels.size), rng.normal(-1, 1, labels.size))
    a, b = metrics.fit_platt(logits, labels, weights=metrics.balanced_weights(labels))
    # two unit-variance Gaussians at +-1 with equal priors: p = sigmoid(2 x)
    assert (a, b) == pytest.approx((2.0, 0.0), abs=0.15)
    unweighted = metrics.fit_platt(logits, labels)
    assert unweighted[1] == pytest.approx(np.log(3), abs=0.15)  # the 3:1 prior moves the intercept


def test_weighted_ece_counts_each_class_equally():
    labels = np.array([1, 1, 1, 0])
    probs = np.array([0.5, 0.5, 0.5, 0.5])
    assert metrics.expected_calibration_error(labels, probs) == pytest.approx(0.25)
    assert metrics.expected_calibration_error(labels, probs, weights=metrics.balanced_weights(labels)) == pytest.approx(0.0)
