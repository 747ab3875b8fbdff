"""atheris fuzz target for everything an upload goes through before the model: format detection,
PNG/JPEG decoding, DICOM (pydicom), zip limits, NIfTI (nibabel). Anything but a scan or a
ScanRejected is a finding.

    make fuzz FUZZ_SECONDS=300     # or: python fuzz/fuzz_read_scan.py -max_total_time=300 fuzz/corpus

The seed corpus (small valid files of each format, made here) is written to the corpus folder
when it is empty.
"""

import gzip
import io
import sys
import zipfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["pancscan"]):
    from pancscan.errors import ScanRejected
    from pancscan.reading.scan_input import read_scan


def seed_corpus(folder: Path) -> None:
    import nibabel as nib
    import numpy as np
    from PIL import Image
    from pydicom import dcmwrite
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        return
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (32, 32)).astype(np.uint8)
    for fmt in ("PNG", "JPEG"):
        buffer = io.BytesIO()
        Image.fromarray(grey).save(buffer, format=fmt)
        (folder / f"seed.{fmt.lower()}").write_bytes(buffer.getvalue())
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.Modality, ds.SeriesInstanceUID = "CT", generate_uid()
    ds.ImageOrientationPatient, ds.ImagePositionPatient = [1, 0, 0, 0, 1, 0], [0, 0, 0]
    ds.Rows = ds.Columns = 32
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = (grey.astype(np.uint16) * 8).tobytes()
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    dicom = buffer.getvalue()
    (folder / "seed.dcm").write_bytes(dicom)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a/IM1", dicom)
        archive.writestr("a/IM2", dicom)
    (folder / "seed.zip").write_bytes(buffer.getvalue())
    volume = (grey.astype(np.int16)[..., None].repeat(3, axis=2) * 4 - 1024)
    nifti = nib.Nifti1Image(volume, np.diag([-0.7, -0.7, 2.5, 1.0])).to_bytes()
    (folder / "seed.nii").write_bytes(nifti)
    (folder / "seed.nii.gz").write_bytes(gzip.compress(nifti))


def test_one_input(data: bytes) -> None:
    try:
        read_scan(data, (127.5, 255.0), 64)
    except ScanRejected:
        pass


if __name__ == "__main__":
    corpus = [Path(a) for a in sys.argv[1:] if not a.startswith("-")]
    for folder in corpus:
        seed_corpus(folder)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
