"""A slice with its lesion heatmap drawn over it, for people to look at (PNG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def overlay(grey: np.ndarray, heatmap: np.ndarray, opacity: float = 0.5) -> Image.Image:
    """RGB image: the slice in grey, the heatmap (0..1, any grid) in red where it is above 0.1."""
    base = np.clip(np.asarray(grey, np.float32), 0, 255)
    heat = Image.fromarray(np.asarray(heatmap, np.float32)).resize((base.shape[1], base.shape[0]), Image.Resampling.BILINEAR)
    alpha = np.clip((np.asarray(heat) - 0.1) / 0.9, 0, 1)[..., None] * opacity
    red = np.array([255.0, 40.0, 0.0])
    rgb = base[..., None] * (1 - alpha) + red * alpha
    return Image.fromarray(rgb.astype(np.uint8))


def save_overlay(grey: np.ndarray, heatmap: np.ndarray, target: Path) -> Path:
    """Write the slice the heatmap belongs to (display intensities 0..255) with the heatmap over it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    overlay(grey, heatmap).save(target)
    return target
