"""Slices back to what a scanner sends: Hounsfield units, and a zip of one DICOM CT series.

The slices store HU clipped to 0..255, so 0 stands for anything at or below 0 HU. Here a 0 inside
the body becomes fat (-100 HU) and a 0 outside it air (-1000 HU): independent values that the
runtime's conversion must clip back to the slice. No patient attributes are written.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
from scipy import ndimage

FAT_HU, AIR_HU = -100.0, -1000.0


def body_mask(grey: np.ndarray) -> np.ndarray:
    """The patient: the largest region above 0 HU with its holes (fat, bowel gas) filled."""
    tissue = ndimage.binary_closing(grey > 0, iterations=3)
    labels, count = ndimage.label(tissue)
    if count == 0:
        return np.zeros(grey.shape, bool)
    largest = 1 + int(np.argmax(ndimage.sum(tissue, labels, range(1, count + 1))))
    return ndimage.binary_fill_holes(labels == largest)


def hu_from_slice(grey: np.ndarray) -> np.ndarray:
    """Integer HU whose clip to 0..255 is the slice (rounded): fat inside the body, air outside."""
    grey = np.rint(np.asarray(grey, np.float64))
    return np.where(grey > 0, grey, np.where(body_mask(grey), FAT_HU, AIR_HU))


def ct_slice(hu: np.ndarray, z: float, series_uid: str, number: int, spacing_mm: float = 0.8, thickness_mm: float = 2.5) -> bytes:
    """One axial CT slice as DICOM Part 10 bytes (radiological view, rows anterior to posterior)."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID, ds.SeriesNumber, ds.InstanceNumber, ds.Modality = series_uid, 1, number, "CT"
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [-200.0, -200.0, z]
    ds.PixelSpacing, ds.SliceThickness = [spacing_mm, spacing_mm], thickness_mm
    ds.Rows, ds.Columns = hu.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = np.rint(hu + 1024).astype(np.int16).tobytes()
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def series_zip(slices_hu: list[np.ndarray], thickness_mm: float = 2.5) -> bytes:
    """A zip of one series, slice k at z = k x thickness (the order of ``slices_hu``)."""
    from pydicom.uid import generate_uid

    uid = generate_uid()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for k, hu in enumerate(slices_hu):
            archive.writestr(f"IM{k:04d}.dcm", ct_slice(hu, k * thickness_mm, uid, k + 1, thickness_mm=thickness_mm))
    return buffer.getvalue()
