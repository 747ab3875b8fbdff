"""Decoding and preprocessing of CT slice images: pure functions over numpy arrays.

The model's input convention is Hounsfield units clipped to 0..255 (grey = HU; fat and air are 0,
the pancreas about 100, bone and contrast 255): the convention of the training slices. DICOM and
NIfTI are converted so; a PNG or JPEG is taken to be in that convention already.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from pancscan.errors import ScanRejected

# HU clipped to 0..255, as a window: 0 HU -> 0, 255 HU -> 255
WINDOW_CENTER_HU = 127.5
WINDOW_WIDTH_HU = 255.0
MODEL_SIZE = 256
MAX_SIDE_PX = 4096  # well below Pillow's decompression-bomb limit
SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}


@dataclass(frozen=True)
class DecodedImage:
    """A slice as display intensity 0..255 (float32, HxW), and whether the file was in colour."""

    grey: np.ndarray
    is_colour: bool


def hu_to_display(hu: np.ndarray, center: float = WINDOW_CENTER_HU, width: float = WINDOW_WIDTH_HU) -> np.ndarray:
    """Window Hounsfield units to intensity 0..255 (by default: HU clipped to 0..255)."""
    low = center - width / 2
    return np.clip((np.asarray(hu, np.float32) - low) * (255.0 / width), 0, 255)


def decode_image(data: bytes) -> DecodedImage:
    """Decode PNG or JPEG bytes. Raises ScanRejected for anything else or anything broken."""
    if not any(data.startswith(sig) for sig in SIGNATURES):
        raise ScanRejected("unreadable_file", "Not a PNG or JPEG file.")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if max(img.size) > MAX_SIDE_PX:
                raise ScanRejected("too_large", f"Image is {img.size[0]}x{img.size[1]} pixels; the limit is {MAX_SIDE_PX} a side.")
            img.load()
            return _to_grey(img)
    except ScanRejected:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own size check, from the header, at open
        raise ScanRejected("too_large", f"Image is over {MAX_SIDE_PX} pixels a side.") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ScanRejected("unreadable_file", "The image file is damaged or truncated.") from exc


def _to_grey(img: Image.Image) -> DecodedImage:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale PNG: a display image with 16-bit depth, scaled to 0..255.
        arr = np.asarray(img, np.float32)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return DecodedImage(np.clip(arr * (255.0 / top), 0, 255), False)
    if img.mode in ("L", "LA", "P", "1"):
        return DecodedImage(np.asarray(img.convert("L"), np.float32), False)
    rgb = np.asarray(img.convert("RGB"), np.float32)
    spread = float(np.mean(rgb.max(axis=2) - rgb.min(axis=2)))
    # JPEG chroma noise gives a grey RGB image a spread of about 1; real colour is far above.
    return DecodedImage(rgb.mean(axis=2), spread > 4.0)


def to_model_input(grey: np.ndarray, size: int = MODEL_SIZE) -> np.ndarray:
    """Resize display intensities to the model's square input, scaled to 0..1 (float32).

    Training uses this same function, so the model sees exactly what the runtime gives it.
    """
    img = Image.fromarray(np.asarray(grey, np.float32))  # float32 -> mode "F"
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(img, np.float32) / 255.0, 0.0, 1.0)
