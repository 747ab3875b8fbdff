"""Each limit of an uploaded zip (docs/model-and-data.md: 2000 files, 64 MB a file, 1 GB expanded, 200:1 compression,
1000 slices, a file larger than it declares) refuses a zip by itself and names itself; the size limits
fire from the central directory, before anything is decompressed."""

import io
import struct
import zipfile

import nibabel as nib
import numpy as np
import pytest

from pancscan.errors import ScanRejected
from pancscan.reading.scan_input import read_scan
from tests.dicom_factory import ct_dataset, to_bytes, zip_members, zip_of

MB = 1024 * 1024


def zip_declaring(sizes: list[tuple[int, int]]) -> bytes:
    """A zip of small stored members whose central directory declares (expanded, compressed) sizes."""
    data = bytearray(zip_of({f"IM{i:04d}.dcm": b"x" for i in range(len(sizes))}))
    at = 0
    for expanded, compressed in sizes:
        at = data.index(b"PK\x01\x02", at + 1)
        struct.pack_into("<II", data, at + 20, compressed, expanded)  # central directory: sizes at 20 and 24
    return bytes(data)


def size_refusal(data: bytes) -> str | None:
    """The message of a too_large refusal of the zip's members, or None (read, or refused otherwise)."""
    try:
        (zip_members(data))
    except ScanRejected as refused:
        return refused.message if refused.code == "too_large" else None
    return None


def refusal(data: bytes, monkeypatch) -> ScanRejected:
    """The ScanRejected that reading the zip's members raises, with decompression forbidden."""
    def no_decompression(*args, **kwargs):
        raise AssertionError("a member was opened")

    monkeypatch.setattr(zipfile.ZipFile, "open", no_decompression)
    with pytest.raises(ScanRejected) as refused:
        (zip_members(data))
    return refused.value


def test_2001_files_are_over_the_2000_file_limit(monkeypatch):
    refused = refusal(zip_of({f"f{i}": b"" for i in range(2001)}), monkeypatch)
    assert refused.code == "too_large" and "2001 files; the limit is 2000" in refused.message


def test_2000_files_are_within_it():
    assert len((zip_members(zip_of({f"f{i}": b"" for i in range(2000)})))) == 2000


@pytest.mark.parametrize("expanded, refused", [(64 * MB, False), (64 * MB + 1, True)])
def test_a_file_over_64_mb_is_refused(expanded, refused, monkeypatch):
    if refused:
        rejection = refusal(zip_declaring([(expanded, expanded)]), monkeypatch)
        assert rejection.code == "too_large" and "over 64 MB" in rejection.message
    else:
        assert size_refusal(zip_declaring([(expanded, expanded)])) is None


@pytest.mark.parametrize("expanded, compressed, refused", [
    (2_000_000, 10_000, False),  # exactly 200:1
    (2_000_000, 9_999, True),
    (MB, 1, False),  # a megabyte of zeros is no bomb, whatever its ratio
    (MB + 1, 1, True),
])
def test_a_compression_ratio_over_200_to_1_is_refused_above_a_megabyte(expanded, compressed, refused, monkeypatch):
    if refused:
        rejection = refusal(zip_declaring([(expanded, compressed)]), monkeypatch)
        assert rejection.code == "too_large" and "compression ratio" in rejection.message
    else:
        assert size_refusal(zip_declaring([(expanded, compressed)])) is None


@pytest.mark.parametrize("files, refused", [(16, False), (17, True)])
def test_more_than_1_gb_expanded_is_refused(files, refused, monkeypatch):
    sizes = [(64 * MB, 64 * MB)] * files  # each within the file limit and the ratio: only the total counts
    if refused:
        rejection = refusal(zip_declaring(sizes), monkeypatch)
        assert rejection.code == "too_large" and "expands to over 1024 MB" in rejection.message
    else:
        assert size_refusal(zip_declaring(sizes)) is None


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_a_file_larger_than_it_declares_is_refused_and_never_handed_on(method):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as written:
        written.writestr("IM0001.dcm", b"DICM" * 5000)
    data = bytearray(buffer.getvalue())
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 100)  # declares 100 bytes of 20000
    struct.pack_into("<I", data, 22, 100)  # and so does its local header
    with pytest.raises(ScanRejected) as caught:
        (zip_members(bytes(data)))
    assert caught.value.code == "unreadable_file"  # zipfile stops at the declared size; the checksum fails


def tiny_ct(z: int) -> bytes:
    return to_bytes(ct_dataset(np.full((4, 4), 40.0), z=z))


def test_a_zip_of_1001_dicom_slices_is_over_the_1000_slice_limit():
    files = {f"IM{i:04d}.dcm": tiny_ct(i) for i in range(1001)}
    with pytest.raises(ScanRejected) as caught:
        read_scan(zip_of(files), (127.5, 255.0), 8)
    assert caught.value.code == "too_large" and "over 1000 DICOM slices" in caught.value.message


def test_a_nifti_volume_of_1001_slices_is_over_the_1000_slice_limit():
    hu = np.full((8, 8, 1001), -1000, np.int16)  # air around a little soft tissue, as CT
    hu[2:6, 2:6] = 40
    volume = nib.Nifti1Image(hu, np.eye(4)).to_bytes()
    with pytest.raises(ScanRejected) as caught:
        read_scan(volume, (127.5, 255.0), 8)
    assert caught.value.code == "too_large" and "1001 slices; the limit is 1000" in caught.value.message
