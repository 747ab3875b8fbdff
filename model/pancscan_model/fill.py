"""A tumour taken out of a slice: its mask filled from the tissue around it.

- ``erase_tumour`` (evaluation only, never in training): the surrounding tissue interpolated into
  the mask (a harmonic fill, Laplace's equation with the surroundings as boundary), plus noise whose
  strength and grain match a ring of tissue around the mask; the slice then goes through the same
  JPEG encoding as the data. A detector that looks at the tumour scores the erased slice lower.
- ``training_fill``: other fills for training (blurred surroundings with white noise, or tissue
  copied from nearby), so that what the model learns about filled-in slices is not one fill's look.
- ``transplant``: a real tumour's attenuation, relative to its own surroundings, added into another
  slice's pancreas: tumours on the normal hospital's slices, so that the hospital does not predict
  the label.

Images are float32 grey = HU clipped to 0..255 at the stored resolution (512x512); masks boolean.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image
from scipy import ndimage, sparse
from scipy.sparse.linalg import spsolve

RING_PX = 8  # the surroundings that the fill matches, beyond the mask's dilated edge
EDGE_PX = 2  # the mask grown by this much: partial-volume edges belong to the tumour
HIGH_PASS_SIGMA = 2.0


def jpeg_roundtrip(image: np.ndarray, quality: int = 75) -> np.ndarray:
    """Through an 8-bit JPEG and back, as every slice of the data was stored (Pillow's default quality)."""
    buffer = io.BytesIO()
    Image.fromarray(np.clip(np.rint(image), 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("L"), np.float32)


def _box(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    return (slice(max(0, rows[0] - margin), min(h, rows[-1] + margin + 1)),
            slice(max(0, cols[0] - margin), min(w, cols[-1] + margin + 1)))


def _regions(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The region to fill (the mask and its edge) and the ring of surroundings just outside it."""
    region = ndimage.binary_dilation(mask, iterations=EDGE_PX)
    ring = ndimage.binary_dilation(region, iterations=RING_PX) & ~region
    return region, ring


def harmonic_fill(image: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Laplace's equation inside ``region``, with the image outside it as the boundary."""
    out = image.astype(np.float64).copy()
    index = -np.ones(image.shape, np.int64)
    inside = np.argwhere(region)
    index[region] = np.arange(len(inside))
    h, w = image.shape
    rows, cols, values, rhs = [], [], [], np.zeros(len(inside))
    for k, (y, x) in enumerate(inside):
        rows.append(k), cols.append(k), values.append(4.0)
        for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
            ny, nx = min(max(ny, 0), h - 1), min(max(nx, 0), w - 1)
            if index[ny, nx] >= 0:
                rows.append(k), cols.append(index[ny, nx]), values.append(-1.0)
            else:
                rhs[k] += image[ny, nx]
    system = sparse.csr_matrix((values, (rows, cols)), shape=(len(inside), len(inside)))
    out[region] = spsolve(system, rhs)
    return out.astype(np.float32)


def _residual(image: np.ndarray) -> np.ndarray:
    return image - ndimage.gaussian_filter(image, HIGH_PASS_SIGMA)


def _robust_std(values: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(values - np.median(values)))) if values.size else 0.0


def _lag1(residual: np.ndarray, where: np.ndarray) -> float:
    """Correlation of horizontally and vertically adjacent residuals, both inside ``where``."""
    pairs = [(residual[:, :-1][where[:, :-1] & where[:, 1:]], residual[:, 1:][where[:, :-1] & where[:, 1:]]),
             (residual[:-1][where[:-1] & where[1:]], residual[1:][where[:-1] & where[1:]])]
    a, b = (np.concatenate(p) for p in zip(*pairs))
    if a.size < 10 or a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


@lru_cache(maxsize=1)
def _grain_table() -> tuple[np.ndarray, np.ndarray]:
    """Lag-1 correlation of the high-passed residual of white noise blurred by each sigma."""
    sigmas = np.linspace(0.0, 2.5, 26)
    white = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
    everywhere = np.ones(white.shape, bool)
    lags = [_lag1(_residual(ndimage.gaussian_filter(white, s) if s else white), everywhere) for s in sigmas]
    return sigmas, np.maximum.accumulate(np.array(lags))


def matched_noise(shape: tuple[int, int], strength: float, lag1: float, rng: np.random.Generator) -> np.ndarray:
    """Noise whose high-passed residual has robust std ``strength`` and adjacent correlation ``lag1``."""
    sigmas, lags = _grain_table()
    sigma = float(np.interp(lag1, lags, sigmas))
    noise = rng.standard_normal(shape).astype(np.float32)
    noise = ndimage.gaussian_filter(noise, sigma) if sigma > 0 else noise
    scale = _robust_std(_residual(noise).ravel())
    return noise * (strength / scale if scale > 0 else 0.0)


def _blend(image: np.ndarray, filled: np.ndarray, region: np.ndarray) -> np.ndarray:
    weight = np.clip(ndimage.gaussian_filter(region.astype(np.float32), 1.0) * 1.5, 0, 1)
    weight[region] = 1.0
    return np.clip(image * (1 - weight) + filled * weight, 0, 255).astype(np.float32)


def erase_tumour(image: np.ndarray, tumour: np.ndarray, seed: int = 0, quality: int = 75) -> np.ndarray:
    """The slice with its tumour filled in from its surroundings (harmonic fill + matched noise), JPEG
    encoded as the data were. Compare it with ``jpeg_roundtrip(image)``: both one more generation."""
    if not tumour.any():
        return jpeg_roundtrip(image, quality)
    region, ring = _regions(tumour)
    box = _box(region | ring, 2)
    part, part_region, part_ring = image[box].astype(np.float32), region[box], ring[box]
    residual = _residual(part)
    strength, lag1 = _robust_std(residual[part_ring]), _lag1(residual, part_ring)
    filled = harmonic_fill(part, part_region) + matched_noise(part.shape, strength, lag1, np.random.default_rng(seed))
    out = image.astype(np.float32).copy()
    out[box] = _blend(part, filled, part_region)
    return jpeg_roundtrip(out, quality)


def _normalised_blur(image: np.ndarray, known: np.ndarray, sigma: float) -> np.ndarray:
    weight = ndimage.gaussian_filter(known.astype(np.float32), sigma)
    return ndimage.gaussian_filter(np.where(known, image, 0).astype(np.float32), sigma) / np.maximum(weight, 1e-6)


def _blurred_background(part: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The surroundings spread into the region: normalised blurs from fine to coarse, finest that reaches."""
    background = np.full(part.shape, np.nan, np.float32)
    for sigma in (3.0, 6.0, 12.0, 24.0, 48.0):
        weight = ndimage.gaussian_filter((~region).astype(np.float32), sigma)
        estimate = _normalised_blur(part, ~region, sigma)
        take = np.isnan(background) & (weight > 0.05)
        background[take] = estimate[take]
    return np.where(np.isnan(background), np.nanmean(part[~region]) if (~region).any() else 0, background)


def training_fill(image: np.ndarray, tumour: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The tumour filled by one of the training fills (never ``erase_tumour``'s), without JPEG encoding."""
    if not tumour.any():
        return image.astype(np.float32)
    region, ring = _regions(tumour)
    box = _box(region | ring, 64)
    part, part_region, part_ring = image[box].astype(np.float32), region[box], ring[box]
    filled = _donor_tissue(part, part_region, part_ring, rng) if rng.random() < 0.5 else None
    if filled is None:
        strength = _robust_std(_residual(part)[part_ring]) * rng.uniform(0.7, 1.3)
        noise = rng.standard_normal(part.shape).astype(np.float32)
        noise = ndimage.gaussian_filter(noise, rng.uniform(0.3, 1.2))
        filled = _blurred_background(part, part_region) + noise * strength / max(float(noise.std()), 1e-6)
    out = image.astype(np.float32).copy()
    out[box] = _blend(part, filled, part_region)
    return out


def _donor_tissue(part: np.ndarray, region: np.ndarray, ring: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """Tissue from 20-60 px away, of about the ring's intensity, shifted into the region; None if none fits."""
    target = float(np.median(part[ring]))
    avoid = ndimage.binary_dilation(region, iterations=4)
    for _ in range(20):
        angle, distance = rng.uniform(0, 2 * np.pi), rng.uniform(20, 60)
        dy, dx = int(round(distance * np.sin(angle))), int(round(distance * np.cos(angle)))
        donor_region = np.roll(region, (dy, dx), axis=(0, 1))
        if (donor_region & avoid).any() or donor_region.sum() != region.sum():
            continue  # overlaps the tumour, or wrapped around the box
        donor = part[donor_region]
        if abs(float(np.median(donor)) - target) < 15 and float(np.mean(donor <= 1)) < 0.2:
            shifted = np.roll(part, (-dy, -dx), axis=(0, 1))
            return shifted + (target - float(np.median(donor)))
    return None


def tumour_contrast_hu(image: np.ndarray, tumour: np.ndarray) -> float:
    """Median HU of the tumour minus that of the soft tissue (above 20 HU) in the ring around it;
    NaN where the ring holds too little soft tissue to say. Near 0: iso-attenuating on this slice."""
    _, ring = _regions(tumour)
    tissue = ring & (image > 20)
    return float(np.median(image[tumour]) - np.median(image[tissue])) if tissue.sum() >= 20 else float("nan")


def tumour_attenuation(image: np.ndarray, tumour: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The tumour as a smooth difference from its surroundings (grey levels), cut to its box, and its mask."""
    region, _ = _regions(tumour)
    box = _box(region, 4)
    part = image[box].astype(np.float32)
    delta = ndimage.gaussian_filter(part, 1.0) - _blurred_background(part, region[box])
    weight = np.clip(ndimage.gaussian_filter(region[box].astype(np.float32), 1.0) * 1.5, 0, 1)
    return delta * weight, tumour[box]


def transplant(image: np.ndarray, pancreas: np.ndarray, delta: np.ndarray, mask: np.ndarray,
               rng: np.random.Generator, inside: float = 0.7) -> tuple[np.ndarray, np.ndarray] | None:
    """``delta`` (from ``tumour_attenuation``) added where at least ``inside`` of its mask falls in
    ``pancreas``; returns the new image and the tumour's mask there, or None if it fits nowhere."""
    h, w = mask.shape
    candidates = np.argwhere(pancreas)
    if len(candidates) == 0 or h >= image.shape[0] or w >= image.shape[1]:
        return None
    for _ in range(12):
        cy, cx = candidates[rng.integers(len(candidates))]
        top, left = cy - h // 2, cx - w // 2
        if top < 0 or left < 0 or top + h > image.shape[0] or left + w > image.shape[1]:
            continue
        window = (slice(top, top + h), slice(left, left + w))
        if mask.sum() and (pancreas[window] & mask).sum() >= inside * mask.sum():
            out, placed = image.astype(np.float32).copy(), np.zeros(image.shape, bool)
            out[window] = np.clip(out[window] + delta, 0, 255)
            placed[window] = mask
            return out, placed
    return None
