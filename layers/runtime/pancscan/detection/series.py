"""A series along the patient axis, in millimetres: which slices are scored, and how their scores
make one scan score.

A series is judged over a physical extent, never over a count of slices: slices are sampled every
``grid_mm`` along the axis (a 0.8 mm series is not scored five times as often as a 4 mm one); the
strongest stretch of ``window_mm`` is found (a tumour is a 3-D object that spans several slices);
and that stretch is judged against the extent it was found in (``extent_surprise``): the longer
the stretch of body a normal series covers, the more likely it holds one bright stretch by chance,
so the same stretch counts for less in a longer series and a normal series is not flagged more
often for being long.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

ASSUMED_SPACING_MM = 2.5  # between slices whose positions a file does not give (a typical reconstruction)


def sample_on_grid(positions_mm: Sequence[float], grid_mm: float) -> list[int]:
    """Indices of the slices nearest to points ``grid_mm`` apart from the first slice, in order and
    each at most once: a series as thick as the grid or thicker keeps every slice."""
    z = np.asarray(positions_mm, np.float64)
    if grid_mm <= 0 or len(z) <= 1:
        return list(range(len(z)))
    points = np.arange(z[0], z[-1] + grid_mm / 2, grid_mm)
    after = np.clip(np.searchsorted(z, points), 1, len(z) - 1)
    nearest = np.where(points - z[after - 1] <= z[after] - points, after - 1, after)
    return sorted(set(nearest.tolist()))


def window_means(positions_mm: Sequence[float], logits: Sequence[float], window_mm: float) -> np.ndarray:
    """For each slice, the mean logit of the slices within ``window_mm / 2`` of it (itself included)."""
    z, x = np.asarray(positions_mm, np.float64), np.asarray(logits, np.float64)
    near = np.abs(z[:, None] - z[None, :]) <= window_mm / 2 + 1e-6
    return (near * x[None, :]).sum(axis=1) / near.sum(axis=1)


def strongest_stretch(positions_mm: Sequence[float], logits: Sequence[float], window_mm: float) -> tuple[float, np.ndarray]:
    """(the scan logit, which slices form the stretch that gives it): for each scored slice (a finite
    logit; NaN: not scored), the mean logit of the scored slices within ``window_mm / 2`` of it; the
    highest of those means. -inf and no stretch when no slice was scored."""
    z, x = np.asarray(positions_mm, np.float64), np.asarray(logits, np.float64)
    scored = np.flatnonzero(np.isfinite(x))
    stretch = np.zeros(len(x), bool)
    if not len(scored):
        return float("-inf"), stretch
    means = window_means(z[scored], x[scored], window_mm)
    centre = scored[int(np.argmax(means))]
    stretch[scored] = np.abs(z[scored] - z[centre]) <= window_mm / 2 + 1e-6
    return float(means.max()), stretch


def extent_surprise(stretch_logit: float, extent_mm: float, stretch_mm: float, null_mean: float, null_sd: float) -> float:
    """-log of the chance that a normal series of ``extent_mm`` holds a stretch at least this strong,
    its ``extent_mm / stretch_mm`` stretches taken as independent draws from the normal stretches'
    distribution (a normal law of ``null_mean`` and ``null_sd``, fitted on validation patients)."""
    draws = max(1.0, extent_mm / stretch_mm)
    tail = 0.5 * math.erfc((stretch_logit - null_mean) / null_sd / math.sqrt(2))  # one normal stretch as strong
    chance = -math.expm1(draws * math.log1p(-min(tail, 1 - 1e-16)))  # any of them
    return -math.log(max(chance, 1e-300))


def scored_extent_mm(positions_mm: Sequence[float], scored: Sequence[bool]) -> float:
    """The length of body the scored slices cover: each slice stands for the half-gaps to its
    neighbours among the sampled slices (a lone slice for one gap)."""
    z = np.asarray(positions_mm, np.float64)
    if len(z) == 1:
        return 0.0
    gaps = np.diff(z)
    share = (np.r_[gaps[0], gaps] + np.r_[gaps, gaps[-1]]) / 2
    return float(share[np.asarray(scored, bool)].sum())
