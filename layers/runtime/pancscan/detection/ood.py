"""Is this an axial abdominal CT slice at all? A rule fixed on the training slices alone.

Simple image statistics in the model's convention, HU clipped to 0..255 (the fraction at 0 HU or
below: air and fat; saturated: bone and contrast; soft tissue; and the fraction at 0 along the image
border) must fall inside the ranges seen on real training slices, widened by a margin;
then the model's pancreas head must find a pancreas. Colour images are refused outright.
"""

from __future__ import annotations

import numpy as np

from pancscan.errors import ScanRejected

# In model-input units (0..1 = 0..255 HU)
ZERO_BELOW = 2 / 255  # at or below about 0 HU: air, lung, fat, outside the body
SATURATED_ABOVE = 250 / 255  # bone, contrast
SOFT_TISSUE = (20 / 255, 200 / 255)  # muscle, organs, vessels
BORDER_PX = 6


def slice_features(image: np.ndarray) -> dict[str, float]:
    """Fractions of the (256x256, 0..1) model input in each intensity class."""
    border = np.concatenate(
        [image[:BORDER_PX].ravel(), image[-BORDER_PX:].ravel(), image[:, :BORDER_PX].ravel(), image[:, -BORDER_PX:].ravel()]
    )
    return {
        "zero_fraction": float(np.mean(image < ZERO_BELOW)),
        "saturated_fraction": float(np.mean(image > SATURATED_ABOVE)),
        "soft_tissue_fraction": float(np.mean((image > SOFT_TISSUE[0]) & (image < SOFT_TISSUE[1]))),
        "border_zero_fraction": float(np.mean(border < ZERO_BELOW)),
    }


def fit_ranges(features: list[dict[str, float]], margin: float = 0.25) -> dict[str, list[float]]:
    """Per feature, the range seen on training slices widened by ``margin`` of its width."""
    ranges = {}
    for name in features[0]:
        values = np.array([f[name] for f in features])
        lo, hi = float(values.min()), float(values.max())
        pad = margin * (hi - lo)
        ranges[name] = [max(0.0, lo - pad), min(1.0, hi + pad)]
    return ranges


def check_image(features: dict[str, float], ranges: dict[str, list[float]], *, is_colour: bool) -> None:
    """Raise ScanRejected(not_abdominal_ct) unless the image statistics look like CT."""
    if is_colour:
        raise ScanRejected("not_abdominal_ct", "This is a colour image; CT slices are greyscale.")
    for name, (lo, hi) in ranges.items():
        if name in features and not lo <= features[name] <= hi:
            raise ScanRejected(
                "not_abdominal_ct",
                "The image does not look like an axial abdominal CT slice with grey = HU clipped to 0..255 "
                f"({name.replace('_', ' ')} {features[name]:.2f} is outside {lo:.2f}-{hi:.2f}).",
            )


def check_pancreas(pancreas_max: float, minimum: float) -> None:
    """Raise ScanRejected(not_abdominal_ct) when the model finds no pancreas in the slice."""
    if pancreas_max < minimum:
        raise ScanRejected(
            "not_abdominal_ct",
            "No pancreas was found in this slice; PancScan only scores axial CT slices through the pancreas.",
        )
