"""Metrics, calibration and operating point: plain numpy, checked by unit tests."""

from __future__ import annotations

import numpy as np
from scipy.special import expit
from scipy.stats import rankdata

from pancscan.detection.model import platt


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with ties counted half)."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, np.float64)
    pos, neg = scores[labels], scores[~labels]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([pos, neg]))  # ties get their average rank
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False-positive and true-positive rates at every threshold, from (0, 0) to (1, 1)."""
    labels = np.asarray(labels).astype(bool)
    order = np.argsort(-np.asarray(scores, np.float64), kind="mergesort")
    tps = np.concatenate([[0], np.cumsum(labels[order])])
    fps = np.concatenate([[0], np.cumsum(~labels[order])])
    return fps / max(fps[-1], 1), tps / max(tps[-1], 1)


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Case weights that give both classes the same total (mean weight 1): a 50% prevalence."""
    y = np.asarray(labels).astype(bool)
    n_pos, n_neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    return np.where(y, len(y) / (2 * n_pos), len(y) / (2 * n_neg))


def fit_platt(logits: np.ndarray, labels: np.ndarray, iterations: int = 100, weights: np.ndarray | None = None) -> tuple[float, float]:
    """Platt scaling p = sigmoid(a * logit + b), fitted by Newton's method with Platt's smoothed
    targets; ``weights`` per case (e.g. ``balanced_weights``), default 1."""
    x = np.asarray(logits, np.float64)
    y = np.asarray(labels, np.float64)
    c = np.ones_like(x) if weights is None else np.asarray(weights, np.float64)
    n_pos, n_neg = y.sum(), (1 - y).sum()
    target = np.where(y > 0, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    def loss(a: float, b: float) -> float:
        z = a * x + b
        return float(np.sum(c * (np.logaddexp(0, z) - target * z)))

    a, b = 1.0, 0.0
    for _ in range(iterations):
        p = expit(a * x + b)
        grad = np.array([np.sum(c * (p - target) * x), np.sum(c * (p - target))])
        w = c * p * (1 - p) + 1e-9
        hess = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]]) + 1e-6 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        # Newton overshoots where the start saturates the sigmoid: halve the step until the loss falls
        scale, current = 1.0, loss(a, b)
        while scale > 1e-6 and loss(a - scale * step[0], b - scale * step[1]) > current:
            scale /= 2
        a, b = a - scale * step[0], b - scale * step[1]
        if np.abs(scale * step).max() < 1e-10:
            break
    return float(a), float(b)


calibrate = platt  # the runtime's formula, so training and serving cannot drift


def threshold_at_specificity(labels: np.ndarray, scores: np.ndarray, specificity: float = 0.95) -> float:
    """The lowest threshold (score >= t is positive) whose specificity on these cases is >= the target."""
    negatives = np.sort(np.asarray(scores, np.float64)[~np.asarray(labels).astype(bool)])
    allowed_fp = int(np.floor((1 - specificity) * negatives.size))
    # strictly above the (allowed_fp + 1)-th highest negative
    k = negatives.size - allowed_fp - 1
    return float(np.nextafter(negatives[k], np.inf))


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, bins: int = 10, weights: np.ndarray | None = None) -> float:
    """ECE over equal-width probability bins, weighted by the share of cases (or of ``weights``) in each bin."""
    labels = np.asarray(labels, np.float64)
    probs = np.asarray(probs, np.float64)
    c = np.ones_like(probs) if weights is None else np.asarray(weights, np.float64)
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(probs, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = index == b
        if sel.any():
            share = c[sel].sum() / c.sum()
            ece += share * abs(np.average(probs[sel], weights=c[sel]) - np.average(labels[sel], weights=c[sel]))
    return float(ece)


def reliability(labels: np.ndarray, probs: np.ndarray, bins: int = 10, weights: np.ndarray | None = None) -> list[dict]:
    """Per equal-width probability bin: the mean probability and the observed rate (weighted by ``weights``)."""
    labels = np.asarray(labels, np.float64)
    probs = np.asarray(probs, np.float64)
    c = np.ones_like(probs) if weights is None else np.asarray(weights, np.float64)
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(probs, edges[1:-1]), 0, bins - 1)
    return [
        {"bin": [float(edges[b]), float(edges[b + 1])], "count": int((index == b).sum()),
         "mean_probability": float(np.average(probs[index == b], weights=c[index == b])),
         "observed_rate": float(np.average(labels[index == b], weights=c[index == b]))}
        for b in range(bins) if (index == b).any()
    ]


def patient_bootstrap(statistic, groups: np.ndarray, n: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% interval of ``statistic(indices)`` resampling whole patients (clusters), not cases."""
    groups = np.asarray(groups)
    unique = np.unique(groups)
    members = {g: np.flatnonzero(groups == g) for g in unique}
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        picked = rng.choice(unique, unique.size, replace=True)
        value = statistic(np.concatenate([members[g] for g in picked]))
        if np.isfinite(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))
