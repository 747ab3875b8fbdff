"""Training data from real tumours: slices prepared once at the model's scale, then random crops.

Every crop carries a dense target (the tumour map), so the model learns where a tumour is, not which
hospital a slice comes from. A batch mixes:

- a real tumour (MSD) with its filled-in twin (``fill.training_fill``) under the same augmentation:
  the only difference between the two is the tumour;
- a real tumour's attenuation transplanted into a normal (NIH) pancreas: tumours on the other
  hospital's slices too;
- normal NIH slices around the pancreas or anywhere, and MSD slices anywhere (tumour-free tissue of
  the tumour hospital, the tumour labelled where a crop holds it);
- once the model's false alarms on its own training slices have been mined (``Prepared.false_alarms``,
  both hospitals), crops centred on them: the places it confuses with a tumour, shown again.

Augmentation covers what differs between hospitals: pose and scale (resampling), +-20 HU level,
0.9-1.1 contrast, noise, blur, JPEG. Pure numpy/scipy: no TensorFlow here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from pancscan.reading.imaging import MODEL_SIZE, to_model_input
from pancscan_model.data import CTSlice
from pancscan_model.fill import jpeg_roundtrip, training_fill, transplant, tumour_attenuation

MAP_STRIDE = 4  # one map cell per 4x4 model-input pixels
NORMAL_FOCUS = 0.7  # a normal (NIH) crop is centred near the pancreas this often, else anywhere
SOFT_TISSUE = 100 / 255  # contrast changes pivot here (pancreas, about 100 HU)
VISIBLE_HU = 10  # a transplanted tumour differs from its surroundings by at least this much (median)


@dataclass(frozen=True)
class BatchMix:
    """Crops per batch of each kind (a tumour pair counts two)."""

    tumour_pairs: int = 5
    transplants: int = 3
    normal: int = 7
    msd_anywhere: int = 3
    false_alarms: int = 0  # normal crops until false alarms are mined, then crops centred on them

    @property
    def size(self) -> int:
        return 2 * self.tumour_pairs + self.transplants + self.normal + self.msd_anywhere + self.false_alarms


@dataclass
class Prepared:
    """Slices at the model's scale (0..1, float16) with their maps; twins for the tumour slices."""

    images: np.ndarray  # (N, 256, 256)
    tumour: np.ndarray  # (N, 256, 256) float16 0..1 (resampled mask)
    pancreas: np.ndarray  # (N, 256, 256) float16 0..1
    pancreas_known: np.ndarray  # (N,) bool: NIH masks; MSD has none (its tumours lie in the pancreas)
    twins: np.ndarray  # (N, 256, 256): the tumour filled in (MSD), else the image itself
    kinds: np.ndarray  # (N,) "msd" | "nih" | "transplant"
    cases: np.ndarray  # (N,) case or patient (a transplant: its host patient)
    # slice index -> (row, column) in the 256-pixel model input of each place the model scores as a
    # tumour where there is none; filled while training (train.false_alarm_spots)
    false_alarms: dict[int, np.ndarray] = field(default_factory=dict)


def _scaled(image: np.ndarray) -> np.ndarray:
    return to_model_input(image, MODEL_SIZE).astype(np.float16)


def _scaled_mask(mask: np.ndarray | None) -> np.ndarray:
    if mask is None:
        return np.zeros((MODEL_SIZE, MODEL_SIZE), np.float16)
    return _scaled(mask.astype(np.float32) * 255.0)


def prepare(msd: list[CTSlice], nih: list[CTSlice], rng: np.random.Generator, transplants: int) -> Prepared:
    """Model-scale copies of every slice, a filled-in twin per tumour slice (JPEG encoded, as the data),
    and ``transplants`` NIH slices each given a random training tumour's attenuation (a visible one)."""
    images, tumour, pancreas, known, twins, kinds, cases = [], [], [], [], [], [], []

    def add(image, tumour_mask, pancreas_mask, twin, kind, case):
        images.append(_scaled(image)), tumour.append(_scaled_mask(tumour_mask)), pancreas.append(_scaled_mask(pancreas_mask))
        known.append(pancreas_mask is not None), twins.append(_scaled(twin)), kinds.append(kind), cases.append(case)

    for item in msd:
        add(item.image, item.tumour, None, jpeg_roundtrip(training_fill(item.image, item.tumour, rng)), "msd", item.patient)
    for item in nih:
        add(item.image, None, item.pancreas, item.image, "nih", item.patient)
    attenuations = [tumour_attenuation(item.image, item.tumour) for item in msd if item.tumour.any()]
    # only tumours that differ from their surroundings: an invisible one would teach "the pancreas is a tumour"
    attenuations = [(delta, mask) for delta, mask in attenuations if abs(float(np.median(delta[mask]))) >= VISIBLE_HU]
    made = 0
    while made < transplants and attenuations and nih:
        host = nih[rng.integers(len(nih))]
        delta, mask = attenuations[rng.integers(len(attenuations))]
        placed = transplant(host.image, host.pancreas, delta, mask, rng)
        if placed is not None:
            image, where = placed
            add(jpeg_roundtrip(image), where, host.pancreas, host.image, "transplant", host.patient)
            made += 1
    return Prepared(np.stack(images), np.stack(tumour), np.stack(pancreas), np.array(known), np.stack(twins), np.array(kinds),
                    np.array(cases))


def _affine_crop(stack: np.ndarray, rng: np.random.Generator, crop: int, focus: np.ndarray | None, focus_p: float) -> np.ndarray:
    """One random pose (rotation, scale, shift, flips) applied to every channel, cut to crop x crop:
    centred near ``focus`` with probability ``focus_p``, anywhere otherwise."""
    angle = np.deg2rad(rng.uniform(-15, 15))
    zoom = np.exp(rng.uniform(np.log(0.8), np.log(1.25)))
    matrix = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) / zoom
    size = np.array(stack.shape[1:], float)
    centre = size / 2
    offset = centre - matrix @ centre
    if focus is not None and focus.max() > 0.5 and rng.random() < focus_p:
        target = np.linalg.solve(matrix, np.argwhere(focus > 0.5).mean(axis=0) - offset)
        corner = target - crop / 2 + rng.uniform(-crop / 4, crop / 4, 2)
    else:
        corner = rng.uniform(0, size - crop, 2)
    corner = (np.clip(corner, 0, size - crop) // MAP_STRIDE * MAP_STRIDE).astype(int)
    offset = offset + matrix @ corner
    out = np.stack([ndimage.affine_transform(c.astype(np.float32), matrix, offset, output_shape=(crop, crop), order=1,
                                             mode="constant", cval=0.0) for c in stack])
    if rng.random() < 0.5:  # both vertical orientations occur (PNG/JPEG stored upside down)
        out = out[:, ::-1]
    if rng.random() < 0.5:
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out)


def _intensity(images: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """One hospital-to-hospital change for all ``images`` (twins change together): level, contrast,
    noise, blur, JPEG. Pixels at 0 (fat, air: at or below 0 HU) stay 0."""
    level, contrast = rng.uniform(-20, 20) / 255, rng.uniform(0.9, 1.1)
    noise = rng.standard_normal(images[0].shape).astype(np.float32) * rng.uniform(0, 8) / 255
    blur = rng.uniform(0.3, 0.9) if rng.random() < 0.3 else 0.0
    quality = int(rng.integers(40, 96)) if rng.random() < 0.3 else 0
    out = []
    for image in images:
        body = image > 0
        if blur:
            image = ndimage.gaussian_filter(image, blur)
        image = np.where(body, np.clip((image - SOFT_TISSUE) * contrast + SOFT_TISSUE + level + noise, 0, 1), 0)
        if quality:
            image = jpeg_roundtrip(image * 255, quality) / 255
        out.append(image.astype(np.float32))
    return out


def _block_max(mask: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    return mask.reshape(h // MAP_STRIDE, MAP_STRIDE, w // MAP_STRIDE, MAP_STRIDE).max(axis=(1, 3))


def _block_mean(mask: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    return mask.reshape(h // MAP_STRIDE, MAP_STRIDE, w // MAP_STRIDE, MAP_STRIDE).mean(axis=(1, 3))


@dataclass(frozen=True)
class Batch:
    images: np.ndarray  # (B, crop, crop, 1)
    tumour: np.ndarray  # (B, crop/4, crop/4, 1) 0/1: a cell is tumour if any of its pixels is
    pancreas: np.ndarray  # (B, crop/4, crop/4, 1) fraction of the cell
    pancreas_weight: np.ndarray  # (B, crop/4, crop/4, 1): where the pancreas target is known
    twin_of: np.ndarray  # (B,) index of the crop's filled-in twin, -1 if none


def _sample(data: Prepared, index: int, rng: np.random.Generator, crop: int, focus_p: float, with_twin: bool,
            spot: np.ndarray | None = None):
    channels = [data.images[index], data.tumour[index], data.pancreas[index]] + ([data.twins[index]] if with_twin else [])
    focus = data.tumour[index] if data.kinds[index] != "nih" else data.pancreas[index]
    if spot is not None:  # a false alarm: the crop centred near it
        focus = np.zeros(focus.shape, np.float32)
        focus[tuple(np.clip(spot, 0, np.array(focus.shape) - 1))] = 1.0
    stack = _affine_crop(np.stack(channels).astype(np.float32), rng, crop, focus, focus_p)
    images = _intensity([stack[0]] + ([stack[3]] if with_twin else []), rng)
    tumour = _block_max((stack[1] > 0.5).astype(np.float32))
    pancreas = np.maximum(_block_mean(stack[2]), tumour)  # a tumour lies in the pancreas
    weight = np.ones_like(tumour) if data.pancreas_known[index] else tumour.copy()  # MSD: tumour cells only
    return images, tumour, pancreas, weight


def batches(data: Prepared, mix: BatchMix, crop: int, seed: int):
    """Endless batches (``Batch``) of ``mix`` from the prepared slices."""
    rng = np.random.default_rng(seed)
    by_kind = {kind: np.flatnonzero(data.kinds == kind) for kind in ("msd", "nih", "transplant")}
    # a case with many slices (a large tumour) weighs more, but not in proportion: 1/sqrt(its slices)
    counts = {case: np.sum(data.cases == case) for case in set(data.cases)}
    chance = {kind: 1 / np.sqrt([counts[data.cases[i]] for i in pool]) for kind, pool in by_kind.items()}
    chance = {kind: weights / weights.sum() for kind, weights in chance.items() if len(weights)}
    plan = ([("msd", 0.9, True)] * mix.tumour_pairs + [("transplant", 0.9, False)] * mix.transplants
            + [("nih", NORMAL_FOCUS, False)] * mix.normal + [("msd", 0.0, False)] * mix.msd_anywhere
            + [("false_alarm", 1.0, False)] * mix.false_alarms)
    while True:
        images, tumour, pancreas, weight, twin_of = [], [], [], [], []
        for kind, focus_p, with_twin in plan:
            spot = None
            if kind == "false_alarm" and data.false_alarms:
                index = int(rng.choice(list(data.false_alarms)))
                spots = data.false_alarms[index]
                spot = spots[rng.integers(len(spots))]
            else:
                if kind == "false_alarm":  # none mined yet: a normal crop
                    kind, focus_p = "nih", NORMAL_FOCUS
                kind = kind if len(by_kind[kind]) else "nih"
                index = int(rng.choice(by_kind[kind], p=chance[kind]))
            crops, t, p, w = _sample(data, index, rng, crop, focus_p, with_twin, spot)
            for k, image in enumerate(crops):
                images.append(image)
                # the twin's tumour is gone: its target is empty; the pancreas stays where it was
                tumour.append(t if k == 0 else np.zeros_like(t)), pancreas.append(p), weight.append(w)
                twin_of.append(len(images) if with_twin and k == 0 else -1)
        yield Batch(np.stack(images)[..., None], np.stack(tumour)[..., None], np.stack(pancreas)[..., None],
                    np.stack(weight)[..., None], np.array(twin_of))

