"""NIfTI-1 volumes (.nii, .nii.gz) to axial HU slices in the radiological view, from the affine."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from pancscan.errors import ScanRejected

GZIP_MAGIC = b"\x1f\x8b"
MAX_VOXELS = 512 * 512 * 1000
MAX_UNCOMPRESSED_BYTES = 1024 * 1024 * 1024


@dataclass(frozen=True)
class Volume:
    ras: np.ndarray  # stored values, axes reordered to RAS+ (views: no copy)
    slope: float
    inter: float
    slice_thickness_mm: float
    pixel_spacing_mm: tuple[float, float]

    def __len__(self) -> int:
        return self.ras.shape[2]

    def slice_hu(self, index: int) -> np.ndarray:
        """Axial slice ``index`` (inferior to superior) in HU, radiological view."""
        return radiological_axial(self.ras, index).astype(np.float32) * self.slope + self.inter


def is_nifti(data: bytes) -> bool:
    return data[:2] == GZIP_MAGIC or (len(data) >= 348 and data[344:348] in (b"n+1\x00", b"ni1\x00"))


def gunzip_limited(data: bytes, limit: int = MAX_UNCOMPRESSED_BYTES) -> bytes:
    """Decompress gzip without ever holding more than ``limit`` bytes (a gzip bomb stops early)."""
    inflater = zlib.decompressobj(wbits=47)  # gzip or zlib header
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ScanRejected("unreadable_file", "The .gz file is damaged.") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise ScanRejected("too_large", f"The volume expands to over {limit // 2**20} MB.")
    return out


def radiological_axial(volume_ras: np.ndarray, index: int) -> np.ndarray:
    """Axial slice ``index`` of a RAS+ volume as seen in radiology: anterior up, patient's right left."""
    # volume[x, y, z] with x towards the patient's right and y anterior: rows must run anterior
    # to posterior (y decreasing) and columns from the patient's right to left (x decreasing).
    return np.ascontiguousarray(volume_ras[::-1, ::-1, index].T)


def read_nifti(data: bytes) -> Volume:
    import nibabel as nib
    from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

    if data[:2] == GZIP_MAGIC:
        data = gunzip_limited(data)
    try:
        image = nib.Nifti1Image.from_bytes(data)
        shape = image.shape
    except Exception as exc:  # nibabel raises many types for broken headers
        raise ScanRejected("unreadable_file", "The NIfTI file is damaged, or not NIfTI-1.") from exc
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise ScanRejected("unreadable_file", "Only 3-D NIfTI volumes are supported.")
    if 0 in shape:  # (found by hypothesis: a zeroed dimension)
        raise ScanRejected("unreadable_file", "The NIfTI volume is empty.")
    if int(np.prod(shape)) > MAX_VOXELS:
        raise ScanRejected("too_large", f"The volume has over {MAX_VOXELS} voxels.")
    # Reorient the stored (unscaled) array to RAS+ as views, then scale slice by slice: memory
    # stays near the file's own size.
    try:
        raw = np.asarray(image.dataobj.get_unscaled()).reshape(shape)
        orientation = io_orientation(image.affine)
        ras = apply_orientation(raw, ornt_transform(orientation, axcodes2ornt("RAS")))
    except Exception as exc:  # a truncated data block, a degenerate affine, an odd data type
        raise ScanRejected("unreadable_file", "The NIfTI file is damaged (its data or its affine).") from exc
    slope = image.dataobj.slope if np.isfinite(image.dataobj.slope) and image.dataobj.slope != 0 else 1.0
    inter = image.dataobj.inter if np.isfinite(image.dataobj.inter) else 0.0
    zooms = np.abs(image.header.get_zooms()[:3])
    ras_zooms = [0.0, 0.0, 0.0]
    for axis, (ras_axis, _) in enumerate(orientation):
        ras_zooms[int(ras_axis)] = float(zooms[axis])
    volume = Volume(ras, float(slope), float(inter), ras_zooms[2], (ras_zooms[1], ras_zooms[0]))
    lowest = min(float(raw.min()) * volume.slope, float(raw.max()) * volume.slope) + volume.inter
    if lowest > -500:
        # CT has air near -1000 HU around the body; MR intensities are never that low.
        raise ScanRejected("unsupported_modality", "The volume's values do not look like CT Hounsfield units (MR?); "
                           "PancScan's model reads CT only.")
    return volume
