"""Rule-based synthesis of hypo-attenuating pancreatic lesions in real CT slices.

After the idea of Hu et al., CVPR 2023 ("Label-free liver tumor segmentation"): a lesion is an
irregular soft-edged region placed inside the organ mask, darker than the parenchyma by a chosen
number of Hounsfield units, with the parenchyma's own noise kept, and sometimes mass effect or a
dilated duct. Everything is drawn from wide ranges so that a model cannot learn one recipe.

Two shape generators exist on purpose: ``"train"`` (Fourier-perturbed ellipses with a sigmoid
edge) is used for training, ``"heldout"`` (thresholded smooth noise with a graded attenuation
profile and no sharp edge) is used only for evaluation, as a stand-in for lesion generators the
model has never seen.

Images are float arrays of grey = HU clipped to 0..255 (the model's convention), 0.7 mm pixels nominal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from pancscan.reading.imaging import WINDOW_WIDTH_HU, hu_to_display

UNITS_PER_HU = 255.0 / WINDOW_WIDTH_HU
STYLES = ("train", "heldout")


@dataclass(frozen=True)
class Lesion:
    """What was inserted: a soft mask (0..1, image-sized) and its measured size."""

    mask: np.ndarray
    diameter_mm: float
    drop_hu: float
    style: str
    mass_effect: bool
    dilated_duct: bool


def sample_diameter_mm(rng: np.random.Generator) -> float:
    """Log-uniform over 5-40 mm: small lesions are as common as large ones in training."""
    return float(np.exp(rng.uniform(np.log(5.0), np.log(40.0))))


def simulate_lesion(
    image: np.ndarray,
    pancreas: np.ndarray,
    rng: np.random.Generator,
    *,
    diameter_mm: float | None = None,
    drop_hu: float | None = None,
    style: str = "train",
    spacing_mm: float = 0.7,
    mass_effect: bool | None = None,
    attempts: int = 20,
) -> tuple[np.ndarray, Lesion]:
    """Return a copy of ``image`` with one lesion inside ``pancreas`` and what was inserted.

    The returned mask may extend past the original pancreas mask only where mass effect pushed
    the pancreas outwards; it never leaves the (warped) pancreas. ``mass_effect`` None: random.
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}")
    pancreas = pancreas.astype(bool)
    if pancreas.sum() < 20:
        raise ValueError("pancreas mask is too small to hold a lesion")
    diameter_mm = sample_diameter_mm(rng) if diameter_mm is None else float(diameter_mm)
    drop_hu = float(rng.uniform(15.0, 70.0)) if drop_hu is None else float(drop_hu)
    radius = diameter_mm / 2.0 / spacing_mm

    out = image.astype(np.float32).copy()
    organ = pancreas.copy()
    centre = _pick_centre(pancreas, rng)
    box = _box(centre, int(radius * 2.2 + 24), image.shape)
    local = (slice(box[0], box[1]), slice(box[2], box[3]))
    cy, cx = centre[0] - box[0], centre[1] - box[2]
    yy, xx = np.mgrid[0 : box[1] - box[0], 0 : box[3] - box[2]].astype(np.float32)
    dy, dx = yy - cy, xx - cx

    drawn = rng.random() < 0.35
    mass_effect = bool((drawn if mass_effect is None else mass_effect) and radius > 5)
    if mass_effect:
        out[local], organ[local] = _push_outwards(out[local], organ[local], dy, dx, radius, rng)

    shape = _shape_train(dy, dx, radius, rng) if style == "train" else _shape_heldout(dy, dx, radius, rng)
    # Keep the lesion in the (possibly pushed) organ, with a soft border.
    inside = ndimage.gaussian_filter(ndimage.binary_erosion(organ[local], iterations=1).astype(np.float32), 1.0)
    alpha = np.clip(shape * np.clip(inside * 1.4, 0, 1), 0, 1)
    if (alpha > 0.5).sum() < 4 and attempts > 1:
        # The centre landed on a sliver of pancreas: try again elsewhere.
        return simulate_lesion(
            image, pancreas, rng, diameter_mm=diameter_mm, drop_hu=drop_hu, style=style,
            spacing_mm=spacing_mm, mass_effect=mass_effect, attempts=attempts - 1,
        )

    region = out[local]
    smooth = ndimage.gaussian_filter(region, 1.5)
    parenchyma = region[organ[local] & (alpha < 0.1)]
    noise_sd = float(np.std((region - smooth)[organ[local]])) if organ[local].any() else 4.0
    drop = drop_hu * UNITS_PER_HU
    darkening = drop * alpha
    if rng.random() < 0.4:  # necrotic, darker centre
        core = np.clip(alpha - rng.uniform(0.3, 0.7), 0, 1) / 0.7
        darkening += rng.uniform(0.1, 0.5) * drop * core
    if rng.random() < 0.15:  # thin enhancing rim
        rim = np.clip(ndimage.gaussian_filter(alpha, 1.2) - alpha, 0, 1) * 3
        darkening -= rng.uniform(0.1, 0.3) * drop * np.clip(rim, 0, 1)
    # Lesion texture: keep some of the parenchyma's grain and add grain of the same strength.
    keep = rng.uniform(0.4, 1.1)
    grain = ndimage.gaussian_filter(rng.standard_normal(region.shape).astype(np.float32), rng.uniform(0.5, 1.2))
    grain *= noise_sd * rng.uniform(0.5, 1.2) / max(float(grain.std()), 1e-6)
    textured = smooth + keep * (region - smooth) + grain
    region = region * (1 - alpha) + textured * alpha - darkening
    if parenchyma.size and rng.random() < 0.3:
        # Blend towards the local parenchyma mean first, so a lesion on a bright vessel edge
        # is still defined relative to pancreas, not to the vessel.
        region -= alpha * 0.5 * (smooth - float(np.median(parenchyma)))

    dilated_duct = bool(rng.random() < 0.25)
    if dilated_duct:
        region = _dilated_duct(region, organ[local], alpha, cy, cx, radius, spacing_mm, noise_sd, rng)

    out[local] = region
    mask = np.zeros(image.shape, np.float32)
    mask[local] = alpha
    lesion = Lesion(
        mask=mask,
        diameter_mm=measured_diameter_mm(mask > 0.5, spacing_mm),
        drop_hu=drop_hu,
        style=style,
        mass_effect=mass_effect,
        dilated_duct=dilated_duct,
    )
    return np.clip(out, 0, 255), lesion


def measured_diameter_mm(mask: np.ndarray, spacing_mm: float = 0.7) -> float:
    """Longest extent of a binary region over 18 directions (a Feret diameter), in mm."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return 0.0
    angles = np.linspace(0, np.pi, 18, endpoint=False)
    proj = np.outer(np.cos(angles), xs) + np.outer(np.sin(angles), ys)
    return float((proj.max(axis=1) - proj.min(axis=1) + 1).max() * spacing_mm)


def _pick_centre(pancreas: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
    """A pancreas pixel, deeper ones more likely (a lesion centred on the rim would be a sliver)."""
    ys, xs = np.nonzero(pancreas)
    y0, x0 = max(ys.min() - 1, 0), max(xs.min() - 1, 0)
    crop = pancreas[y0 : ys.max() + 2, x0 : xs.max() + 2]  # the distance transform of 512x512 is slow
    weights = ndimage.distance_transform_edt(crop).ravel() ** 1.5
    index = rng.choice(weights.size, p=weights / weights.sum())
    y, x = divmod(int(index), crop.shape[1])
    return y + y0, x + x0


def _box(centre: tuple[int, int], half: int, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    y, x = centre
    return max(0, y - half), min(shape[0], y + half + 1), max(0, x - half), min(shape[1], x + half + 1)


def _push_outwards(region, organ, dy, dx, radius, rng):
    """Mass effect: tissue around the centre is displaced outwards (a backward radial warp)."""
    strength = rng.uniform(0.15, 0.4)
    shrink = 1.0 - strength * np.exp(-(dy**2 + dx**2) / (2 * (radius * 1.2) ** 2))
    cy, cx = -dy[0, 0], -dx[0, 0]
    coords = np.stack([cy + dy * shrink, cx + dx * shrink])
    warped = ndimage.map_coordinates(region, coords, order=1, mode="nearest")
    warped_organ = ndimage.map_coordinates(organ.astype(np.float32), coords, order=1, mode="nearest") > 0.5
    return warped, warped_organ


def _shape_train(dy, dx, radius, rng):
    """An ellipse with a wobbly Fourier boundary and a sigmoid edge of random width."""
    angle = rng.uniform(0, np.pi)
    aspect = rng.uniform(0.55, 1.0)
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    theta = np.arctan2(v, u)
    boundary = np.ones_like(theta)
    for k in range(2, 7):
        boundary += rng.uniform(0, 0.18 / (k - 1) ** 0.5) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    a, b = radius, radius * aspect
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2) / boundary
    edge = rng.uniform(0.04, 0.35)
    return 1.0 / (1.0 + np.exp(-(1.0 - rho) / edge))


def _shape_heldout(dy, dx, radius, rng):
    """Thresholded smooth noise inside a disc, with a graded attenuation profile (no sharp edge)."""
    noise = ndimage.gaussian_filter(rng.standard_normal(dy.shape), max(radius / 3, 1.0))
    noise /= max(float(noise.std()), 1e-6)
    rho = np.sqrt(dy**2 + dx**2) / radius
    field = 1.2 * (1 - rho**2) + 0.45 * noise
    power = rng.uniform(1.5, 4.0)
    profile = np.exp(-(rho ** power)) * (field > 0)
    return np.clip(ndimage.gaussian_filter(profile, rng.uniform(0.5, 1.5)) * 1.3, 0, 1)


def _dilated_duct(region, organ, alpha, cy, cx, radius, spacing_mm, noise_sd, rng):
    """A fluid-filled tube from the lesion along the pancreas's long axis, towards one end."""
    ys, xs = np.nonzero(organ)
    if ys.size < 10:
        return region
    cov = np.cov(np.stack([ys - ys.mean(), xs - xs.mean()]))
    axis = np.linalg.eigh(cov)[1][:, -1] * rng.choice([-1.0, 1.0])
    length = rng.uniform(10, 40) / spacing_mm
    width = rng.uniform(1.5, 4.0) / spacing_mm / 2
    yy, xx = np.mgrid[0 : region.shape[0], 0 : region.shape[1]].astype(np.float32)
    along = (yy - cy) * axis[0] + (xx - cx) * axis[1]
    across = np.abs(-(yy - cy) * axis[1] + (xx - cx) * axis[0])
    tube = (along > radius * 0.5) & (along < radius + length) & (across < width) & organ
    tube_alpha = ndimage.gaussian_filter(tube.astype(np.float32), 0.8) * (1 - alpha)
    fluid = float(hu_to_display(np.float32(rng.uniform(0, 20))))  # water-like
    fluid_texture = fluid + noise_sd * rng.standard_normal(region.shape).astype(np.float32)
    return region * (1 - tube_alpha) + fluid_texture * tube_alpha
