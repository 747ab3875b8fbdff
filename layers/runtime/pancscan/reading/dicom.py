"""DICOM CT slices and series to Hounsfield units in the radiological axial view.

Only an allow-list of technical attributes ever leaves this module (``TechnicalInfo``): never a
name, an ID, a date, an institution or a private tag. Error messages never quote header values.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

from pancscan.errors import ScanRejected
from pancscan.reading.imaging import MAX_SIDE_PX

# pydicom logs (not only warns) about odd values, quoting them: header values can be patient data.
logging.getLogger("pydicom").disabled = True

DICM_OFFSET = 128
AXIAL_MIN_COSINE = 0.9  # |slice normal . z| for a slice to count as axial (about 25 degrees of tilt)
AIR_HU = -1024.0


@dataclass(frozen=True)
class DicomSlice:
    """What PancScan keeps of one DICOM file: technical attributes and, for an axial CT slice,
    the model's input (``image``: windowed, radiological view, resized, 0..1)."""

    series_uid: str
    series_number: int | None
    modality: str
    axial: bool
    position: float  # along the slice normal, mm (the instance number where unknown): sorts a series inferior to superior
    position_known: bool  # ImagePositionPatient given: ``position`` is in millimetres
    slice_thickness_mm: float | None
    pixel_spacing_mm: tuple[float, float] | None
    image: np.ndarray | None


def is_dicom(data: bytes) -> bool:
    return data[DICM_OFFSET : DICM_OFFSET + 4] == b"DICM"


def _floats(value) -> list[float] | None:
    try:
        return [float(v) for v in value] if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def parse_dicom(data: bytes):
    """The dataset (pixel data still encoded). Raises ScanRejected("unreadable_file")."""
    import pydicom

    if not is_dicom(data):
        raise ScanRejected("unreadable_file", "Not a DICOM file (no DICM marker).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's warnings quote header values
            return pydicom.dcmread(io.BytesIO(data))
    except Exception as exc:  # pydicom raises many types (found by fuzzing); none may escape
        raise ScanRejected("unreadable_file", "The DICOM file is damaged or truncated.") from exc


PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010) little endian


def header_before_pixels(head: bytes):
    """The dataset of a DICOM file's first bytes when they hold its whole header, up to its pixel
    data; None when they do not (a longer header, no image, another encoding: read the whole file)."""
    import pydicom

    source = io.BytesIO(head)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(source, stop_before_pixels=True)
    except Exception:  # cut mid-element, or damaged: the whole file decides
        return None
    position = source.tell()
    return ds if head[position:position + 4] == PIXEL_DATA_TAG else None


def dicom_slice(ds, to_input: Callable[[np.ndarray], np.ndarray] | None) -> DicomSlice:
    """Technical attributes of ``ds``, and for axial CT its pixels (to HU, then ``to_input``) when
    ``to_input`` is given: a series decodes only the slices it samples, later, with ``dicom_image``."""
    return _guarded(_dicom_slice, ds, to_input)


def dicom_image(ds, to_input: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The model input of an axial CT slice that ``dicom_slice`` has read."""
    return _guarded(lambda ds: _image(ds, *_orientation(ds)[:2], to_input), ds)


def _guarded(read, ds, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # values are converted lazily, and pydicom's warnings quote them
        try:
            return read(ds, *args)
        except ScanRejected:
            raise
        except Exception as exc:  # a damaged element, converted only now
            raise ScanRejected("unreadable_file", "The DICOM file is damaged or truncated.") from exc


def _orientation(ds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The row and column directions and the slice normal (patient coordinates)."""
    orientation = _floats(ds.get("ImageOrientationPatient")) or [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    if len(orientation) != 6:
        orientation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    row, col = np.array(orientation[:3]), np.array(orientation[3:])
    return row, col, np.cross(row, col)


def _image(ds, row: np.ndarray, col: np.ndarray, to_input: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    hu = _hounsfield(ds)
    # Standard axial DICOM (rows along +x = patient's left, columns along +y = posterior) is
    # already the radiological view; flip what runs the other way.
    if row[0] < 0:
        hu = hu[:, ::-1]
    if col[1] < 0:
        hu = hu[::-1, :]
    return to_input(np.ascontiguousarray(hu))


def _dicom_slice(ds, to_input: Callable[[np.ndarray], np.ndarray] | None) -> DicomSlice:
    modality = str(ds.get("Modality", "") or "").upper()
    row, col, normal = _orientation(ds)
    axial = abs(normal[2]) >= AXIAL_MIN_COSINE
    image = _image(ds, row, col, to_input) if modality == "CT" and axial and to_input is not None else None
    position = _floats(ds.get("ImagePositionPatient"))
    spacing = _floats(ds.get("PixelSpacing"))
    thickness = _floats([ds.get("SliceThickness")]) if ds.get("SliceThickness") not in (None, "") else None
    number = str(ds.get("SeriesNumber", "") or "").strip()
    instance = _floats([ds.get("InstanceNumber", 0)]) or [0.0]  # the order when positions are missing
    has_position = bool(position) and len(position) == 3
    return DicomSlice(
        series_uid=str(ds.get("SeriesInstanceUID", "") or ""),
        series_number=int(number) if number.lstrip("-").isdigit() else None,
        modality=modality,
        axial=bool(axial),
        position=float(np.dot(position, normal)) if has_position else instance[0],
        position_known=has_position,
        slice_thickness_mm=thickness[0] if thickness else None,
        pixel_spacing_mm=(spacing[0], spacing[1]) if spacing and len(spacing) == 2 else None,
        image=image,
    )


def has_image(ds) -> bool:
    return "PixelData" in ds


def require_ct_without_image(ds) -> None:
    """For a DICOM object with no image: an MR or SR object says what it is; anything else is unreadable."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            modality = str(ds.get("Modality", "") or "").upper()
        except Exception:  # a damaged element, converted only now (found by fuzzing)
            modality = ""
    if modality:
        require_axial_ct(modality, True)  # refuses any modality but CT, naming it
    raise ScanRejected("unreadable_file", "The DICOM file holds no image.")


def require_axial_ct(modality: str, axial: bool) -> None:
    if modality != "CT":
        raise ScanRejected("unsupported_modality", f"This is {modality or 'not CT (no modality given)'}; PancScan's model reads CT only.")
    if not axial:
        raise ScanRejected("not_axial", "The slices are not axial (sagittal, coronal or strongly tilted); send axial CT.")


def _hounsfield(ds) -> np.ndarray:
    """Stored values -> HU with RescaleSlope/Intercept; padding values become air.

    MONOCHROME1 only changes how values are displayed, not what they mean: HU come from the
    modality transform alone, so no inversion is applied here.
    """
    try:
        stored = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for unsupported or broken pixel data
        raise ScanRejected("unreadable_file", "The DICOM image data cannot be decoded (unsupported compression or damaged).") from exc
    if stored.ndim != 2:
        raise ScanRejected("unreadable_file", "Multi-frame or colour DICOM images are not supported; send single-frame CT slices.")
    if max(stored.shape) > MAX_SIDE_PX:
        raise ScanRejected("too_large", f"The DICOM image is over {MAX_SIDE_PX} pixels a side.")
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    hu = stored.astype(np.float32) * slope + intercept
    padding = ds.get("PixelPaddingValue")
    if padding is not None:
        hu[stored == padding] = AIR_HU
    return hu
