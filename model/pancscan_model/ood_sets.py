"""Images that are not axial abdominal CT slices, made here (no downloads), for measuring the
out-of-distribution check. Each comes as an 8-bit RGB or greyscale PNG, as a user would upload.

Categories: photos (crops of the photographs matplotlib ships), an MRI slice (the brain MRI
matplotlib ships, in many windows), documents (rendered text), radiograph-like pictures
(synthetic: a bright body with dark lung fields; not real X-rays), terrain maps rendered as
greyscale, noise, blank and gradient images.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage


def _sample_data() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data"


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _crop(rng, array: np.ndarray, size: int = 256) -> np.ndarray:
    h, w = array.shape[:2]
    side = int(rng.uniform(0.4, 1.0) * min(h, w))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    piece = array[y : y + side, x : x + side]
    return np.asarray(Image.fromarray(piece.astype(np.uint8)).resize((size, size)))


def photos(rng, n: int) -> list[bytes]:
    pictures = [np.asarray(Image.open(_sample_data() / name).convert("RGB")) for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")]
    out = []
    for i in range(n):
        crop = _crop(rng, pictures[i % len(pictures)])
        out.append(_png(crop if i % 2 else crop.mean(axis=2)))  # half colour, half greyscale
    return out


def mri(rng, n: int) -> list[bytes]:
    raw = np.frombuffer(gzip.open(_sample_data() / "s1045.ima.gz").read(), np.uint16).reshape(256, 256).astype(np.float32)
    out = []
    for _ in range(n):
        lo, hi = np.percentile(raw, rng.uniform(0, 20)), np.percentile(raw, rng.uniform(90, 100))
        image = (raw - lo) / max(hi - lo, 1) * 255
        out.append(_png(ndimage.zoom(image, rng.uniform(1.0, 2.0), order=1)))
    return out


def documents(rng, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        page = Image.new("L", (512, 512), int(rng.integers(220, 256)))
        draw = ImageDraw.Draw(page)
        for line in range(int(rng.integers(8, 30))):
            words = " ".join("".join(chr(97 + c) for c in rng.integers(0, 26, rng.integers(2, 9))) for _ in range(8))
            draw.text((20, 15 + line * 16), words, fill=int(rng.integers(0, 60)))
        out.append(_png(np.asarray(page)))
    return out


def radiograph_like(rng, n: int) -> list[bytes]:
    out = []
    yy, xx = np.mgrid[0:512, 0:512] / 512.0
    for _ in range(n):
        body = np.exp(-(((xx - 0.5) / rng.uniform(0.3, 0.45)) ** 4 + ((yy - 0.5) / 0.6) ** 4)) * rng.uniform(150, 230)
        lungs = sum(np.exp(-(((xx - cx) / 0.13) ** 2 + ((yy - 0.45) / 0.25) ** 2)) for cx in (0.32, 0.68))
        image = body - lungs * rng.uniform(60, 120) + rng.normal(0, 5, body.shape)
        out.append(_png(ndimage.gaussian_filter(image, 2)))
    return out


def terrain(rng, n: int) -> list[bytes]:
    dem = np.load(_sample_data() / "jacksboro_fault_dem.npz")["elevation"].astype(np.float32)
    dem = (dem - dem.min()) / (dem.max() - dem.min()) * 255
    return [_png(_crop(rng, dem)) for _ in range(n)]


def noise(rng, n: int) -> list[bytes]:
    out = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            image = rng.uniform(0, 255, (256, 256))
        elif kind == 1:
            image = rng.normal(128, rng.uniform(20, 80), (256, 256))
        else:
            image = ndimage.gaussian_filter(rng.uniform(0, 255, (256, 256)), rng.uniform(2, 8)) * 3 - 250
        out.append(_png(image))
    return out


def blank_and_gradients(rng, n: int) -> list[bytes]:
    out = []
    yy, xx = np.mgrid[0:256, 0:256] / 255.0
    for i in range(n):
        if i % 2:
            image = np.full((256, 256), float(rng.integers(0, 256)))
        else:
            angle = rng.uniform(0, 2 * np.pi)
            image = 255 * ((np.cos(angle) * xx + np.sin(angle) * yy) % 1.0)
        out.append(_png(image))
    return out


CATEGORIES = {
    "photo": photos,
    "mri": mri,
    "document": documents,
    "radiograph_like": radiograph_like,
    "terrain_map": terrain,
    "noise": noise,
    "blank_or_gradient": blank_and_gradients,
}


def ood_images(seed: int = 0, per_category: int = 20) -> dict[str, list[bytes]]:
    """PNG bytes per category; the same for the same seed."""
    rng = np.random.default_rng(seed)
    return {name: make(rng, per_category) for name, make in CATEGORIES.items()}
