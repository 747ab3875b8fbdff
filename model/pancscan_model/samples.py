"""Turning CT slices into model inputs and targets: paired training samples and fixed test sets.

Pure numpy/scipy, no TensorFlow, so that evaluation of an exported model needs no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from pancscan.imaging import MODEL_SIZE, to_model_input
from pancscan_model.data import CTSlice
from pancscan_model.lesions import sample_diameter_mm, simulate_lesion

MAP_SIZE = MODEL_SIZE // 4
# Diameters cycled through in evaluation sets, so every size band has cases.
EVAL_DIAMETERS_MM = (6.0, 9.0, 12.0, 15.0, 18.0, 22.0, 27.0, 33.0, 39.0)


@dataclass(frozen=True)
class Case:
    """One model input (256x256, 0..1) with its label and, for a positive, the lesion's size."""

    image: np.ndarray
    label: int
    patient: str
    diameter_mm: float = 0.0


def block_mean(a: np.ndarray, k: int = 4) -> np.ndarray:
    h, w = a.shape
    return a.reshape(h // k, k, w // k, k).mean(axis=(1, 3))


def block_max(a: np.ndarray, k: int = 4) -> np.ndarray:
    h, w = a.shape
    return a.reshape(h // k, k, w // k, k).max(axis=(1, 3))


def _affine(
    stack: np.ndarray, rng: np.random.Generator, *, rotate_deg: float, scale: tuple[float, float], shift: float,
    flips: bool, crop: int | None = None, focus: np.ndarray | None = None,
) -> np.ndarray:
    """One random affine (and flips) applied identically to every channel of ``stack`` (C, H, W).

    With ``crop``, only a crop x crop window of the result is computed: centred near ``focus``
    (a mask, e.g. the lesion) four times in five, anywhere otherwise; its corner on the 4-pixel grid.
    """
    angle = np.deg2rad(rng.uniform(-rotate_deg, rotate_deg))
    zoom = rng.uniform(*scale)
    matrix = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) / zoom
    centre = np.array(stack.shape[1:]) / 2.0
    offset = centre - matrix @ centre + rng.uniform(-shift, shift, 2)
    shape = stack.shape[1:]
    if crop:
        size = np.array(shape)
        if focus is not None and focus.any() and rng.random() < 0.8:
            target = np.linalg.solve(matrix, np.argwhere(focus > 0.5).mean(axis=0) - offset)
            corner = target - crop / 2 + rng.uniform(-crop / 4, crop / 4, 2)
        else:
            corner = rng.uniform(0, size - crop, 2)
        corner = (np.clip(corner, 0, size - crop) // 4 * 4).astype(int)
        offset, shape = offset + matrix @ corner, (crop, crop)
    out = np.stack([ndimage.affine_transform(c, matrix, offset, output_shape=shape, order=1, mode="nearest") for c in stack])
    if flips and rng.random() < 0.5:  # both vertical orientations occur in the wild
        out = out[:, ::-1]
    if flips and rng.random() < 0.5:
        out = out[:, :, ::-1]
    return out


def training_pair(item: CTSlice, rng: np.random.Generator, crop: int | None = None) -> tuple[np.ndarray, ...]:
    """A lesioned slice and its lesion-free twin under the same augmentation.

    Returns images (2, S, S), pancreas targets (2, S/4, S/4), lesion targets (2, S/4, S/4) and
    labels (2,), where S is 256, or ``crop`` for a window that mostly holds the lesion (cheaper
    steps, same network); a window that missed the lesion labels both twins normal.
    """
    lesioned, lesion = simulate_lesion(item.image, item.pancreas, rng, diameter_mm=sample_diameter_mm(rng))
    stack = np.stack(
        [
            to_model_input(item.image),
            to_model_input(lesioned),
            to_model_input(item.pancreas * 255.0),
            to_model_input(lesion.mask * 255.0),
        ]
    )
    stack = _affine(stack, rng, rotate_deg=15, scale=(0.8, 1.2), shift=20, flips=True, crop=crop, focus=stack[3])
    normal, sick, pancreas, lesion_map = stack
    # Same intensity change and noise for both twins: the only difference left is the lesion.
    contrast, brightness = rng.uniform(0.85, 1.15), rng.uniform(-0.06, 0.06)
    noise = rng.standard_normal(normal.shape).astype(np.float32) * rng.uniform(0.0, 0.025)
    blur = rng.uniform(0.0, 1.0) if rng.random() < 0.3 else 0.0
    images = []
    for image in (normal, sick):
        image = ndimage.gaussian_filter(image, blur) if blur else image
        images.append(np.clip((image - 0.5) * contrast + 0.5 + brightness + noise, 0, 1))
    pancreas_target = block_mean(pancreas)
    lesion_target = block_max((lesion_map > 0.5).astype(np.float32))
    sick_label = float(lesion_target.max() > 0)
    return (
        np.stack(images).astype(np.float32),
        np.stack([pancreas_target, pancreas_target]).astype(np.float32),
        np.stack([np.zeros_like(lesion_target), lesion_target]).astype(np.float32),
        np.array([0.0, sick_label], np.float32),
    )


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
                posed = _affine(np.stack([image, pancreas * 255.0]), rng, rotate_deg=8, scale=(0.9, 1.1), shift=16, flips=False)
                image, pancreas = posed[0], posed[1] > 127
            diameter = EVAL_DIAMETERS_MM[size_index % len(EVAL_DIAMETERS_MM)] * rng.uniform(0.9, 1.1)
            size_index += 1
            lesioned, lesion = simulate_lesion(image, pancreas, rng, diameter_mm=diameter, style=style)
            cases.append(Case(to_model_input(image), 0, item.patient))
            cases.append(Case(to_model_input(lesioned), 1, item.patient, lesion.diameter_mm))
    return cases
