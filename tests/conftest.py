"""Shared fixtures. The NIH slices are found through $PANCSCAN_DATA, the MSD tumour slices through
$PANCSCAN_MSD_DATA (defaults: the shared folders beside the checkout); tests that need them skip,
saying so, where they are absent."""

from __future__ import annotations

import functools
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "nih-pancreas-ct-slices"
DEFAULT_MSD_DATA = REPO.parent / "shared" / "data" / "msd-pancreas-tumour-ct-slices"


def shared_folder(variable: str, default: Path, marker: str, what: str) -> Path:
    """The folder in $``variable`` (else ``default``) holding ``marker``; the test skips, saying so, without it."""
    path = Path(os.environ.get(variable, default))
    if not (path / marker).exists():
        pytest.skip(f"{what} not found at {path}: set {variable} (see docs/model-and-data.md, 'Data')")
    return path


@pytest.fixture(scope="session")
def nih_dir() -> Path:
    return shared_folder("PANCSCAN_DATA", DEFAULT_DATA, "images", "NIH Pancreas-CT slices")


@pytest.fixture(scope="session")
def nih_slices(nih_dir):
    from pancscan_model.data import load_nih_slices

    return _once(load_nih_slices, nih_dir)


@pytest.fixture(scope="session")
def msd_dir() -> Path:
    return shared_folder("PANCSCAN_MSD_DATA", DEFAULT_MSD_DATA, "slices.csv", "MSD tumour slices")


@pytest.fixture(scope="session")
def msd_slices(msd_dir):
    from pancscan_model.data import load_msd_slices

    return _once(load_msd_slices, msd_dir)


@functools.cache
def _once(load, folder: Path):
    """Loaded once per process, not per session: `make mutate` runs a pytest session for each mutant
    in a process forked from one that has them already."""
    return load(folder)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    """Debian's Orthanc as the hospital's PACS (tests/orthanc.py), for the tests of one module."""
    from tests.orthanc import running_orthanc

    with running_orthanc(tmp_path_factory.mktemp("orthanc")) as pacs:
        yield pacs


@pytest.fixture(scope="session")
def shipped_split(shipped_model, msd_slices, nih_slices):
    """The shipped model's test slices: (MSD tumour slices, NIH normal slices)."""
    import json

    from pancscan_model.data import Splits

    split = json.loads(shipped_model.path.with_suffix(".json").read_text())["split"]
    return Splits(split["msd"], split["nih"]).slices("test", msd_slices, nih_slices)


@pytest.fixture(scope="session")
def shipped_model():
    from pancscan.detection.model import load_model

    return load_model()


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array).astype(np.uint8), mode).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(array: np.ndarray, quality: int = 95) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array).astype(np.uint8)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A small greyscale PNG whose header claims ``width`` x ``height``, its header checksum valid (so
    Pillow reads the claim instead of refusing a broken chunk)."""
    data = bytearray(png_bytes(np.zeros((8, 8))))
    struct.pack_into(">II", data, 16, width, height)  # IHDR data starts at byte 16
    struct.pack_into(">I", data, 29, zlib.crc32(data[12:29]))  # CRC over the chunk type and its 13 bytes
    return bytes(data)


def refusal_of(call, *args) -> tuple[str, str]:
    """The reason code and message with which ``call(*args)`` refuses its input (users see both)."""
    from pancscan.errors import ScanRejected

    with pytest.raises(ScanRejected) as caught:
        call(*args)
    return caught.value.code, caught.value.message
