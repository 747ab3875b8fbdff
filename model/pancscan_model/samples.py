"""Fixed evaluation sets of simulated lesions in normal slices (reported apart from real tumours).

Pure numpy/scipy, no TensorFlow, so that evaluation of an exported model needs no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from pancscan.reading.imaging import to_model_input
from pancscan_model.data import CTSlice
from pancscan_model.lesions import simulate_lesion

# Diameters cycled through in evaluation sets, so every size band has cases.
EVAL_DIAMETERS_MM = (6.0, 9.0, 12.0, 15.0, 18.0, 22.0, 27.0, 33.0, 39.0)


@dataclass(frozen=True)
class Case:
    """One model input (256x256, 0..1) with its label and, for a positive, the lesion's size."""

    image: np.ndarray
    label: int
    patient: str
    diameter_mm: float = 0.0


def _pose(stack: np.ndarray, rng: np.random.Generator, *, rotate_deg: float, scale: tuple[float, float], shift: float) -> np.ndarray:
    """One random rotation, scale and shift applied identically to every channel of ``stack`` (C, H, W)."""
    angle = np.deg2rad(rng.uniform(-rotate_deg, rotate_deg))
    zoom = rng.uniform(*scale)
    matrix = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) / zoom
    centre = np.array(stack.shape[1:]) / 2.0
    offset = centre - matrix @ centre + rng.uniform(-shift, shift, 2)
    return np.stack([ndimage.affine_transform(c, matrix, offset, order=1, mode="nearest") for c in stack])


def evaluation_cases(slices: list[CTSlice], seed: int, *, style: str = "train", variants: int = 3) -> list[Case]:
    """A fixed set: each slice in ``variants`` mild poses, each pose once normal and once lesioned.

    Poses keep the standard orientation (no flips); lesion sizes cycle through EVAL_DIAMETERS_MM.
    """
    rng = np.random.default_rng(seed)
    cases: list[Case] = []
    size_index = 0
    for item in slices:
        for variant in range(variants):
            image, pancreas = item.image, item.pancreas
            if variant:
                posed = _pose(np.stack([image, pancreas * 255.0]), rng, rotate_deg=8, scale=(0.9, 1.1), shift=16)
                image, pancreas = posed[0], posed[1] > 127
            diameter = EVAL_DIAMETERS_MM[size_index % len(EVAL_DIAMETERS_MM)] * rng.uniform(0.9, 1.1)
            size_index += 1
            lesioned, lesion = simulate_lesion(image, pancreas, rng, diameter_mm=diameter, style=style)
            cases.append(Case(to_model_input(image), 0, item.patient))
            cases.append(Case(to_model_input(lesioned), 1, item.patient, lesion.diameter_mm))
    return cases
