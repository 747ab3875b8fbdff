"""Where on a slice a tumour or a false alarm lies: the head, body or tail of the pancreas, by its
column against the spine's (the conventions of the AJCC staging manual, approximated on one axial
slice: head right of the superior mesenteric vein's left border, about the midline; body up to the
aorta's left border, about 25 mm to the patient's left; tail beyond).

Pure numpy/scipy. Slices are in the radiological view (anterior at the top, the patient's left on
the image's right) as grey = HU clipped to 0..255; the pixel size is not recorded per slice in the
shared data (0.6-1.0 mm), so PIXEL_MM is assumed.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

PIXEL_MM = 0.8
BONE = 200  # grey level = HU: the vertebral body's cancellous bone and cortex
HEAD_BODY_MM = 0.0  # columns to the patient's left of the spine's centre, in mm
BODY_TAIL_MM = 25.0
PLACES = ("head", "body", "tail")
OUTSIDE = "outside the pancreas"
UNKNOWN = "unknown"  # a false alarm on a slice without a pancreas mask


def spine_column(image: np.ndarray) -> float:
    """The column of the midline: the axis about which the bone behind the body's centre (vertebra,
    ribs; kidneys and vessels with contrast too) is most nearly its own mirror image, searched within
    a sixth of the body's width around its centre (about 20 mm either way: wider, a kidney's mirror
    image could win); the body's middle column when there is no bone."""
    # fat is 0 here, as is air: the body is what the skin and muscle enclose
    body = ndimage.binary_fill_holes(ndimage.binary_closing(image > 0, iterations=3))
    labelled, count = ndimage.label(body)
    if count == 0:
        return image.shape[1] / 2
    body = labelled == 1 + int(np.argmax(ndimage.sum(body, labelled, range(1, count + 1))))
    rows, cols = np.nonzero(body)
    centre_col, half_width = cols.mean(), (cols.max() - cols.min()) / 2
    bone = (image >= BONE) & body
    bone[: int(rows.mean())] = False
    if not bone.any():
        return float(centre_col)
    width = image.shape[1]
    candidates = np.arange(int(centre_col - half_width / 6), int(centre_col + half_width / 6) + 1)
    # the bone mirrored about column c is the flipped mask shifted by 2c - (width - 1)
    flipped = bone[:, ::-1]
    overlap = [np.sum(bone[:, max(0, s):width + min(0, s)] & flipped[:, max(0, -s):width - max(0, s)])
               for s in 2 * candidates - (width - 1)]
    return float(candidates[int(np.argmax(overlap))])


def place_of_column(column: float, spine: float) -> str:
    offset_mm = (column - spine) * PIXEL_MM
    return "head" if offset_mm < HEAD_BODY_MM else "body" if offset_mm <= BODY_TAIL_MM else "tail"


def place_of_mask(image: np.ndarray, mask: np.ndarray) -> str:
    """The place of a tumour (its mask's centre) on ``image``."""
    return place_of_column(float(np.argwhere(mask)[:, 1].mean()), spine_column(image))


def peak_pixel(heatmap: np.ndarray, shape: tuple[int, ...]) -> tuple[int, int]:
    """The pixel of a slice of ``shape`` at the centre of the heatmap's hottest cell."""
    i, j = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    return int((i + 0.5) * shape[0] / heatmap.shape[0]), int((j + 0.5) * shape[1] / heatmap.shape[1])


def place_of_peak(image: np.ndarray, heatmap: np.ndarray, pancreas: np.ndarray | None, margin_px: int) -> str:
    """Where a heatmap's hottest cell lies: its place in the pancreas (the mask grown by ``margin_px``),
    or "outside the pancreas"; "unknown" without a pancreas mask."""
    y, x = peak_pixel(heatmap, image.shape)
    if pancreas is None:
        return UNKNOWN
    if not ndimage.binary_dilation(pancreas, iterations=margin_px)[y, x]:
        return OUTSIDE
    return place_of_column(x, spine_column(image))
