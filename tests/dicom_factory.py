"""Real DICOM files and NIfTI volumes for tests, made with pydicom and nibabel from display images.

Every CT file carries patient data (PHI) so that tests can prove none of it comes out anywhere.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

PHI = {
    "PatientName": "Doe^Jane^PHINAME",
    "PatientID": "PHIID-98765",
    "PatientBirthDate": "19470312",
    "InstitutionName": "PHI Memorial Hospital",
    "AccessionNumber": "PHIACC-4421",
    "ReferringPhysicianName": "Smith^PHIDOCTOR",
    "StudyDate": "20240229",
    "StudyDescription": "PHI study of Jane Doe",
}
PRIVATE_VALUE = "PHIPRIVATE-secret-note"
PHI_STRINGS = ["PHINAME", "PHIID-98765", "19470312", "PHI Memorial", "PHIACC-4421", "PHIDOCTOR", "20240229",
               "Jane Doe", PRIVATE_VALUE]


def display_to_hu(display: np.ndarray) -> np.ndarray:
    """A slice in the model's convention (grey = HU clipped to 0..255) back to plausible integer HU:
    0 inside the body becomes fat (-100 HU), outside it air (-1000 HU), as a scanner would send."""
    from pancscan_model.dicom_series import hu_from_slice

    return hu_from_slice(display)


def ct_dataset(hu: np.ndarray, *, z: float = 0.0, series_uid: str | None = None, series_number: int = 3,
               modality: str = "CT", orientation=(1, 0, 0, 0, 1, 0), slope: float = 1.0, intercept: float = -1024.0,
               signed: bool = False, photometric: str = "MONOCHROME2", padding: int | None = None) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage if modality == "CT" else MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    for name, value in PHI.items():
        setattr(ds, name, value)
    ds.private_block(0x0011, "PHI CREATOR", create=True).add_new(0x01, "LO", PRIVATE_VALUE)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.SeriesNumber, ds.InstanceNumber = series_number, 1
    ds.Modality = modality
    ds.ManufacturerModelName = "TestScanner 64"
    ds.ImageOrientationPatient = list(orientation)
    ds.ImagePositionPatient = [-180.0, -180.0, z]
    ds.PixelSpacing, ds.SliceThickness = [0.703125, 0.703125], 2.5
    ds.Rows, ds.Columns = hu.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1 if signed else 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    stored = np.rint((np.asarray(hu, np.float64) - intercept) / slope).astype(np.int16 if signed else np.uint16)
    if padding is not None:
        ds.PixelPaddingValue = padding
    ds.PixelData = stored.tobytes()
    return ds


def to_bytes(ds: FileDataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def series_zip(hu_slices: list[np.ndarray], *, spacing: float = 2.5, shuffle_seed: int | None = 0, series_number: int = 3) -> bytes:
    """One CT series, slice k at z = k * spacing; files named and stored in a shuffled order."""
    uid = generate_uid()
    files = [(f"IM{i:04d}", to_bytes(ct_dataset(hu, z=i * spacing, series_uid=uid, series_number=series_number)))
             for i, hu in enumerate(hu_slices)]
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(len(files))
        files = [(f"file{j:04d}.dcm", files[i][1]) for j, i in enumerate(order)]
    return zip_of(dict(files))


def zip_members(data: bytes) -> list[tuple[str, bytes]]:
    """Every member of an uploaded zip that the series reader sees, read whole, as (name, bytes)."""
    from pancscan.reading.archive import read_member, zip_entries

    opened, infos = zip_entries(data)
    return [(info.filename, read_member(opened, info)) for info in infos]


def dciodvfy_errors(dataset, folder) -> list[str]:
    """What dicom3tools' dciodvfy (the reference IOD validator) reports as errors for ``dataset``."""
    import shutil
    import subprocess

    validator = shutil.which("dciodvfy")
    if validator is None:
        raise AssertionError("dciodvfy is missing: `make test` installs Debian's dicom3tools (apt-get install -y dicom3tools)")
    path = Path(folder) / "checked.dcm"
    dataset.save_as(path, enforce_file_format=True)
    report = subprocess.run([validator, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (report.stdout + report.stderr).splitlines() if line.startswith("Error")]
