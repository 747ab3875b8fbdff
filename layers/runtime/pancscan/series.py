"""A series along the patient axis, in millimetres: which slices are scored, and how their scores
make one scan score.

A series is judged over a physical extent, never over a count of slices: slices are sampled every
``grid_mm`` along the axis (a 0.8 mm series is not scored five times as often as a 4 mm one), and
the scan logit is that of the strongest stretch of ``window_mm`` (a tumour is a 3-D object that
spans several slices; a stray bright slice does not).
"""

from __future__ import annotations

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


def strongest_stretch(positions_mm: Sequence[float], logits: Sequence[float], window_mm: float) -> tuple[float, np.ndarray]:
    """(the scan logit, which slices form the stretch that gives it): for each scored slice (a finite
    logit; NaN: not scored), the mean logit of the scored slices within ``window_mm / 2`` of it; the
    highest of those means. -inf and no stretch when no slice was scored."""
    z, x = np.asarray(positions_mm, np.float64), np.asarray(logits, np.float64)
    scored = np.isfinite(x)
    if not scored.any():
        return float("-inf"), np.zeros(len(x), bool)
    near = (np.abs(z[:, None] - z[None, :]) <= window_mm / 2 + 1e-6) & scored[None, :]
    means = np.where(scored, (near * np.where(scored, x, 0.0)[None, :]).sum(axis=1) / np.maximum(near.sum(axis=1), 1), -np.inf)
    centre = int(np.argmax(means))
    return float(means[centre]), near[centre]
