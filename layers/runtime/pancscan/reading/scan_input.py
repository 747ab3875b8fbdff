"""Any supported upload to the model's inputs: one slice, or a series sorted inferior to superior.

Formats are told apart by their signatures, never by file names: PNG, JPEG, DICOM (Part 10),
zip (one DICOM series), NIfTI-1 (.nii, or gzip-compressed .nii.gz).
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from pancscan.detection.series import ASSUMED_SPACING_MM, sample_on_grid
from pancscan.errors import ScanRejected
from pancscan.reading.archive import read_member, zip_entries
from pancscan.reading.dicom import (
    DicomSlice,
    dicom_image,
    dicom_slice,
    has_image,
    header_before_pixels,
    is_dicom,
    parse_dicom,
    require_axial_ct,
    require_ct_without_image,
)
from pancscan.reading.imaging import decode_image, hu_to_display, to_model_input
from pancscan.reading.nifti import GZIP_MAGIC, is_nifti, read_nifti

ZIP_MAGIC = b"PK\x03\x04"
MAX_SERIES_SLICES = 1000
DECODE_THREADS = 2


@dataclass(frozen=True)
class ScanInput:
    """Model inputs (each size x size, 0..1) and the technical facts a result may show. A series
    has ``positions_mm`` for every slice (inferior to superior, from the first); ``images`` are the
    slices sampled on the scan rule's grid, ``sampled`` their indices among all slices."""

    images: list[np.ndarray]
    is_series: bool
    is_colour: bool = False
    technical: dict = field(default_factory=dict)  # allow-list only: format, modality, slices, spacing
    positions_mm: tuple[float, ...] = (0.0,)
    sampled: tuple[int, ...] = (0,)


def detect_format(data: bytes) -> str | None:
    """"png", "jpeg", "dicom", "zip", "nifti_gz" or "nifti" from the content's signature; None otherwise."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if is_dicom(data):
        return "dicom"
    if data.startswith(ZIP_MAGIC):
        return "zip"
    if data.startswith(GZIP_MAGIC):
        return "nifti_gz"
    if is_nifti(data):
        return "nifti"
    return None


def read_scan(data: bytes, window: tuple[float, float], size: int, grid_mm: float = 0.0) -> ScanInput:
    """Raises ScanRejected with a reason code for anything that cannot be scored. A series is
    decoded only at the slices nearest to points ``grid_mm`` apart (0: every slice)."""
    center, width = window

    def to_input(hu: np.ndarray) -> np.ndarray:
        return to_model_input(hu_to_display(hu, center, width), size)

    kind = detect_format(data)
    if kind in ("png", "jpeg"):
        decoded = decode_image(data)
        return ScanInput([to_model_input(decoded.grey, size)], False, decoded.is_colour, {"format": kind})
    if kind == "dicom":
        ds = parse_dicom(data)
        if not has_image(ds):
            require_ct_without_image(ds)
        item = dicom_slice(ds, to_input)
        require_axial_ct(item.modality, item.axial)
        return ScanInput([item.image], False, technical=_dicom_technical("dicom", [item]))
    if kind == "zip":
        return _dicom_series(data, to_input, grid_mm)
    if kind in ("nifti", "nifti_gz"):
        volume = read_nifti(data)
        if len(volume) > MAX_SERIES_SLICES:
            raise ScanRejected("too_large", f"The volume has {len(volume)} slices; the limit is {MAX_SERIES_SLICES}.")
        spacing = volume.slice_thickness_mm if volume.slice_thickness_mm > 0 else ASSUMED_SPACING_MM
        positions = tuple(k * spacing for k in range(len(volume)))
        sampled = tuple(sample_on_grid(positions, grid_mm))
        technical = {"format": "nifti", "modality": "CT", "slices": len(volume),
                     "slice_thickness_mm": round(volume.slice_thickness_mm, 3),
                     "pixel_spacing_mm": [round(x, 4) for x in volume.pixel_spacing_mm]}
        return ScanInput([to_input(volume.slice_hu(z)) for z in sampled], True, technical=technical,
                         positions_mm=positions, sampled=sampled)
    raise ScanRejected("unreadable_file", "Not a PNG, JPEG, DICOM, zip (DICOM series) or NIfTI file.")


HEADER_BYTES = 16384  # a CT slice's header before its pixels: usually under 2 KB


def _dicom_series(data: bytes, to_input: Callable[[np.ndarray], np.ndarray], grid_mm: float) -> ScanInput:
    """One DICOM series from a zip: every DICOM member's header read, grouped by series, sorted by
    position along the slice normal (file names and order mean nothing); only the slices sampled
    on the grid are read whole and decoded, two at a time."""
    archive, infos = zip_entries(data)
    series: dict[str, list[tuple[DicomSlice, object]]] = defaultdict(list)
    count = 0
    for info in infos:
        head = read_member(archive, info, HEADER_BYTES)
        if not is_dicom(head):
            continue  # READMEs, viewers and other files that come with exported studies
        count += 1
        if count > MAX_SERIES_SLICES:
            raise ScanRejected("too_large", f"The zip holds over {MAX_SERIES_SLICES} DICOM slices.")
        ds = header_before_pixels(head)
        if ds is None:
            ds = parse_dicom(read_member(archive, info))
            if not has_image(ds):  # reports and presentation states travel with exported images
                continue
        item = dicom_slice(ds, None)
        series[item.series_uid].append((item, info))
    if not series:
        raise ScanRejected("empty_series", "The zip holds no DICOM image.")
    if len(series) > 1:
        groups = sorted(series.values(), key=lambda members: members[0][0].series_number or 0)
        names = "; ".join(
            f"series {members[0][0].series_number if members[0][0].series_number is not None else '?'} "
            f"({members[0][0].modality or 'no modality'}, {len(members)} files)"
            for members in groups
        )
        raise ScanRejected("too_many_series", f"The zip holds {len(series)} series: {names}. Send one series per upload.")
    (members,) = series.values()
    members.sort(key=lambda member: member[0].position)
    items = [item for item, _ in members]
    require_axial_ct(items[0].modality, all(i.axial for i in items))
    if any(i.modality != "CT" for i in items):
        raise ScanRejected("unsupported_modality", "The series mixes CT with other modalities; PancScan reads CT only.")
    positions = _positions_mm(items)
    sampled = tuple(sample_on_grid(positions, grid_mm))

    def decode(k: int) -> np.ndarray:  # zlib, numpy and Pillow release the GIL: two threads keep two cores busy
        return dicom_image(parse_dicom(read_member(archive, members[k][1])), to_input)

    with ThreadPoolExecutor(max_workers=DECODE_THREADS) as pool:
        images = list(pool.map(decode, sampled))
    return ScanInput(images, True, technical=_dicom_technical("dicom_series", items), positions_mm=positions, sampled=sampled)


def _positions_mm(items: list[DicomSlice]) -> tuple[float, ...]:
    """Each slice's distance from the first along the axis; without positions in the files, the
    slice thickness (or a typical spacing) apart."""
    if all(i.position_known for i in items):
        return tuple(i.position - items[0].position for i in items)
    spacing = items[0].slice_thickness_mm or ASSUMED_SPACING_MM
    return tuple(k * spacing for k in range(len(items)))


def _dicom_technical(kind: str, items: list[DicomSlice]) -> dict:
    first = items[0]
    return {
        "format": kind,
        "modality": first.modality,
        "slices": len(items),
        "slice_thickness_mm": first.slice_thickness_mm,
        "pixel_spacing_mm": list(first.pixel_spacing_mm) if first.pixel_spacing_mm else None,
    }
