"""Hostile and broken files: every decoder answers with a reason code or a scan, never a crash.

Property-based (hypothesis) over random, truncated and mutated files of every supported format.
"""

import io
import struct
import zipfile

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pancscan.errors import REASON_CODES, ScanRejected
from pancscan.reading.scan_input import read_scan
from tests.conftest import jpeg_bytes, png_bytes, png_claiming
from tests.dicom_factory import ct_dataset, display_to_hu, series_zip, to_bytes

SIZE, WINDOW = 32, (127.5, 255.0)
RNG = np.random.default_rng(0)
HU = display_to_hu(RNG.integers(0, 256, (48, 48)))
VALID = {
    "png": png_bytes(RNG.integers(0, 256, (48, 48))),
    "jpeg": jpeg_bytes(RNG.integers(0, 256, (48, 48))),
    "dicom": to_bytes(ct_dataset(HU)),
    "zip": series_zip([HU, HU]),
    "nifti": nib.Nifti1Image(np.stack([HU, HU], axis=2).astype(np.int16), np.diag([-0.7, -0.7, 2.5, 1.0])).to_bytes(),
}
SIGNATURES = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"\0" * 128 + b"DICM", b"PK\x03\x04", b"\x1f\x8b"]


def outcome(data: bytes) -> str:
    """'scan' or the reason code; any other exception fails the test."""
    try:
        read_scan(data, WINDOW, SIZE)
        return "scan"
    except ScanRejected as rejected:
        assert rejected.code in REASON_CODES
        return rejected.code


# derandomized: CI runs the same examples every time; the fuzzer (make fuzz) is what explores
FAST = settings(max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.binary(max_size=4096))
def test_random_bytes_never_crash(data):
    outcome(data)


@FAST
@given(st.sampled_from(SIGNATURES), st.binary(max_size=2048))
def test_a_right_signature_with_garbage_after_it_never_crashes(signature, tail):
    assert outcome(signature + tail) != "scan" or signature == b"\0" * 128 + b"DICM"


@FAST
@given(st.sampled_from(sorted(VALID)), st.data())
def test_truncated_files_never_crash(kind, data):
    valid = VALID[kind]
    outcome(valid[: data.draw(st.integers(0, len(valid) - 1))])


@FAST
@given(st.sampled_from(sorted(VALID)), st.lists(st.tuples(st.integers(0, 10**7), st.integers(0, 255)), min_size=1, max_size=8))
def test_mutated_files_never_crash(kind, flips):
    data = bytearray(VALID[kind])
    for position, value in flips:
        data[position % len(data)] = value
    outcome(bytes(data))


def test_a_png_claiming_100000_pixels_a_side_is_refused_as_too_large_from_its_header():
    # Pillow refuses this size itself at open (decompression bomb): it must still read as too_large
    assert outcome(png_claiming(100_000, 100_000)) == "too_large"
    assert outcome(png_claiming(4097, 4097)) == "too_large"  # below Pillow's limit: only our cap refuses it
    assert 4096 * 4096 < Image.MAX_IMAGE_PIXELS  # our cap is below Pillow's


@pytest.mark.parametrize("tag", ["02000100", "e07f1000"], ids=["meta-element", "pixel-data"])
def test_a_dicom_declaring_a_huge_element_length_does_not_crash_or_allocate_it(tag):
    data = bytearray(VALID["dicom"])
    at = data.index(bytes.fromhex(tag) + (b"OB" if tag == "02000100" else b"OW") + b"\0\0")
    struct.pack_into("<I", data, at + 8, 0xFFFFFFF0)  # 4 GB declared, a few KB present
    # the file meta element swallows the rest: unreadable; the pixel data is last, so what is
    # there is all there is (pydicom reads to the end) and the slice may still be read
    assert outcome(bytes(data)) in (("unreadable_file",) if tag == "02000100" else ("unreadable_file", "scan"))


def test_a_polyglot_is_read_as_what_its_signature_says_and_nothing_else():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("IM0001", VALID["dicom"])
    polyglot = VALID["png"] + buffer.getvalue()  # a PNG with a zip appended: valid as both
    scan = read_scan(polyglot, WINDOW, SIZE)
    assert scan.technical["format"] == "png" and not scan.is_series


@pytest.mark.parametrize("data", [b"", b"\0", b" " * 1000], ids=["empty", "one-byte", "spaces"])
def test_empty_and_blank_files_are_unreadable(data):
    assert outcome(data) == "unreadable_file"


def test_fuzzer_findings_stay_fixed():
    # atheris found these (see docs/deploy-and-operations.md, Reliability): a NIfTI whose data block is cut short, and a
    # DICOM whose group-length value has the wrong number of bytes (pydicom's BytesLengthException)
    nifti = VALID["nifti"]
    assert outcome(nifti[: len(nifti) - 100]) == "unreadable_file"
    data = bytearray(VALID["dicom"])
    at = data.index(bytes.fromhex("02000000") + b"UL")
    struct.pack_into("<H", data, at + 6, 3)
    assert outcome(bytes(data)) == "unreadable_file"


def test_a_zip_entry_with_an_empty_name_is_unreadable():
    # atheris: zipfile's ZipInfo.is_dir() raised IndexError on an empty file name
    data = bytearray(zip_of_one("IM0001", VALID["dicom"]))
    for at in [i for i in range(len(data) - 6) if data[i : i + 6] == b"IM0001"]:
        data[at : at + 6] = b"\0" * 6
    assert outcome(bytes(data)) == "unreadable_file"
    name_length = bytearray(zip_of_one("IM0001", VALID["dicom"]))
    central = name_length.rindex(b"PK\x01\x02")
    struct.pack_into("<H", name_length, central + 28, 0)  # the central directory's file name length
    assert outcome(bytes(name_length)) == "unreadable_file"


def zip_of_one(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def test_a_dicom_without_image_whose_modality_is_damaged_is_unreadable():
    # atheris: an unknown VR on Modality raised NotImplementedError when the value was first read
    from tests.dicom_factory import ct_dataset as make

    ds = make(HU)
    del ds.PixelData
    data = bytearray(to_bytes(ds))
    at = data.index(bytes.fromhex("08006000") + b"CS")
    data[at + 4 : at + 6] = b"CC"
    assert outcome(bytes(data)) == "unreadable_file"
