"""Every scored slice of a series as pictures to page through: the slice as the model saw it (a
256x256 JPEG tile) and its heatmap (a 64x64 PNG tile), 64 slices to a sheet.

Sheets, not an object per slice: a 300-slice series has about 240 scored slices, so objects per
slice would be 480 S3 PUTs (at S3's request price, ten times the Lambda compute of the series) and
480 requests from the browser; eight sheets load at once, and the page's slider then draws from
memory. 8 x 8 tiles keep a sheet at 2048 x 2048 pixels, which every browser decodes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

SLICES_PER_SHEET = 64
COLUMNS = 8  # tiles per row of a sheet
IMAGE_TILE_PX = 256  # the model's input size
HEATMAP_TILE_PX = 64
JPEG_QUALITY = 85


@dataclass(frozen=True)
class ScoredSlice:
    index: int  # among all slices of the series, inferior to superior, from 0
    image: np.ndarray  # the model input, 0..1
    heatmap: np.ndarray  # lesion probability, 64 x 64


def sheet_count(scored: int) -> int:
    return -(-scored // SLICES_PER_SHEET)


def sheet_names(sheet: int) -> tuple[str, str]:
    """The object names of one sheet: slice images, heatmaps."""
    return f"slices-{sheet}.jpg", f"heatmaps-{sheet}.png"


def tile_of(position: int) -> dict:
    """Where the ``position``-th scored slice is: its sheet, and column and row within the sheet."""
    sheet, tile = divmod(position, SLICES_PER_SHEET)
    row, column = divmod(tile, COLUMNS)
    return {"sheet": sheet, "column": column, "row": row}


def _mosaic(tiles: Sequence[np.ndarray]) -> np.ndarray:
    """Tiles (values 0..1, one size) in rows of COLUMNS, as 8-bit grey; unused tiles black."""
    height, width = tiles[0].shape
    rows = -(-len(tiles) // COLUMNS)
    sheet = np.zeros((rows * height, min(len(tiles), COLUMNS) * width), np.uint8)
    for position, tile in enumerate(tiles):
        row, column = divmod(position, COLUMNS)
        sheet[row * height:(row + 1) * height, column * width:(column + 1) * width] = (np.clip(tile, 0, 1) * 255).round()
    return sheet


def _encoded(pixels: np.ndarray, format: str) -> bytes:
    buffer = io.BytesIO()
    options = {"quality": JPEG_QUALITY} if format == "JPEG" else {}
    Image.fromarray(pixels).save(buffer, format=format, **options)
    return buffer.getvalue()


def slice_sheets(slices: Sequence[ScoredSlice]) -> dict[str, bytes]:
    """Object name -> bytes for every sheet of ``slices`` (in series order)."""
    objects = {}
    if slices and (slices[0].image.shape != (IMAGE_TILE_PX,) * 2 or slices[0].heatmap.shape != (HEATMAP_TILE_PX,) * 2):
        raise ValueError("slice sheets hold 256 x 256 slices and 64 x 64 heatmaps")
    for sheet in range(sheet_count(len(slices))):
        part = slices[sheet * SLICES_PER_SHEET:(sheet + 1) * SLICES_PER_SHEET]
        images, heatmaps = sheet_names(sheet)
        objects[images] = _encoded(_mosaic([s.image for s in part]), "JPEG")
        objects[heatmaps] = _encoded(_mosaic([s.heatmap for s in part]), "PNG")
    return objects


def scored_indices(series: dict) -> list[int]:
    """The scored slices of a series result (those with a probability), in series order."""
    return [index for index, probability in enumerate(series["slice_probabilities"]) if probability is not None]
