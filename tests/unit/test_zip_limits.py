"""The zip reader (pancscan.reading.archive): each limit of an uploaded zip (docs/model-and-data.md:
2000 files, 64 MB a file, 1 GB expanded, 200:1 compression, 1000 slices, a file larger than it
declares) refuses a zip by itself and names itself, the size limits firing from the central
directory before anything is decompressed; the exact refusal of damaged, unsafe and unextractable
members; and the folder zip of `pancscan submit` with its size limit."""

import io
import stat
import struct
import zipfile

import nibabel as nib
import numpy as np
import pytest
from pydicom.uid import generate_uid

from pancscan.errors import ScanRejected
from pancscan.reading.archive import zip_folder
from pancscan.reading.scan_input import read_scan
from tests.conftest import refusal_of
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


def test_a_zip_of_exactly_1000_dicom_slices_and_a_readme_is_read():
    uid = generate_uid()
    files = {"README.txt": b"exported by a viewer"} | {
        f"IM{i:04d}.dcm": to_bytes(ct_dataset(np.full((4, 4), 40.0), z=float(i), series_uid=uid)) for i in range(1000)}
    scan = read_scan(zip_of(files), (127.5, 255.0), 8, grid_mm=10_000.0)  # decode one slice: the count is the point
    assert scan.technical["slices"] == 1000 and len(scan.positions_mm) == 1000


def test_a_nifti_volume_of_1001_slices_is_over_the_1000_slice_limit():
    hu = np.full((8, 8, 1001), -1000, np.int16)  # air around a little soft tissue, as CT
    hu[2:6, 2:6] = 40
    volume = nib.Nifti1Image(hu, np.eye(4)).to_bytes()
    with pytest.raises(ScanRejected) as caught:
        read_scan(volume, (127.5, 255.0), 8)
    assert caught.value.code == "too_large" and "1001 slices; the limit is 1000" in caught.value.message


# --- zip_folder -----------------------------------------------------------------------------------

def test_the_folder_zip_holds_the_regular_files_by_relative_path_compressed(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "IM0001.dcm").write_bytes(b"DICM" * 1000)
    (tmp_path / "sub" / "IM0002.dcm").write_bytes(b"second")
    (tmp_path / "link.dcm").symlink_to(tmp_path / "IM0001.dcm")
    with zipfile.ZipFile(io.BytesIO(zip_folder(tmp_path, MB))) as archive:
        assert archive.namelist() == ["IM0001.dcm", "sub/IM0002.dcm"]
        assert archive.read("IM0001.dcm") == b"DICM" * 1000
        assert archive.read("sub/IM0002.dcm") == b"second"
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_DEFLATED}


@pytest.mark.parametrize("max_bytes", [MB + 1, 3 * MB + 12345])  # not whole MB: the message rounds down
def test_a_folder_over_max_bytes_is_too_large_in_whole_megabytes(tmp_path, max_bytes):
    (tmp_path / "a.dcm").write_bytes(b"\0" * (max_bytes - 10))
    (tmp_path / "b.dcm").write_bytes(b"\0" * 11)
    with pytest.raises(ScanRejected) as refused:
        zip_folder(tmp_path, max_bytes)
    assert refused.value.code == "too_large"
    assert refused.value.message == f"The folder holds over {max_bytes // MB} MB."


def test_a_folder_of_exactly_max_bytes_is_zipped(tmp_path):
    (tmp_path / "a.dcm").write_bytes(b"\0" * (MB + 1 - 11))
    (tmp_path / "b.dcm").write_bytes(b"\0" * 11)
    with zipfile.ZipFile(io.BytesIO(zip_folder(tmp_path, MB + 1))) as archive:
        assert sum(info.file_size for info in archive.infolist()) == MB + 1


UNSAFE_PATH = "The zip holds a file with an unsafe path (absolute or '..')."


# Zip members


def test_a_damaged_zip_is_refused_with_its_message():
    assert refusal_of(lambda: (zip_members(b"PK\x03\x04" + b"\0" * 40))) == (
        "unreadable_file", "The zip file is damaged.")


def test_directory_entries_are_not_members():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as written:
        written.writestr("scans/", b"")
        written.writestr("scans/IM0001.dcm", b"slice")
    assert (zip_members(buffer.getvalue())) == [("scans/IM0001.dcm", b"slice")]


@pytest.mark.parametrize("ignored", ["__MACOSX/scans/._IM0001.dcm", ".DS_Store", "scans/.DS_Store", "DICOMDIR",
                                     "scans/Thumbs.db"])
def test_system_files_are_skipped_and_the_files_after_them_still_read(ignored):
    data = zip_of({ignored: b"junk", "IM0001.dcm": b"slice 1", "IM0002.dcm": b"slice 2"})
    assert (zip_members(data)) == [("IM0001.dcm", b"slice 1"), ("IM0002.dcm", b"slice 2")]


@pytest.mark.parametrize("name", [
    "/etc/evil.dcm",
    "\\evil.dcm",
    "../evil.dcm",
    "scans/../../evil.dcm",
    "scans\\..\\..\\evil.dcm",
    "C:",
    "C:evil.dcm",
    "C:/evil.dcm",
    "C:\\evil.dcm",
])
def test_absolute_parent_and_drive_paths_are_refused_with_their_message(name):
    assert refusal_of(lambda: (zip_members(zip_of({name: b"x"})))) == ("unreadable_file", UNSAFE_PATH)


@pytest.mark.parametrize("name", ["a", "IM0001.dcm", "scans/IM0001.dcm", "scans\\IM0001.dcm", "scan..1.dcm",
                                  "..dcm", "ab:c.dcm"])
def test_relative_names_are_read_even_with_dots_or_colons_inside_a_part(name):
    assert (zip_members(zip_of({name: b"x"}))) == [(name, b"x")]


def test_a_symbolic_link_is_refused_with_its_message():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as written:
        link = zipfile.ZipInfo("link.dcm")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        written.writestr(link, "/etc/passwd")
    assert refusal_of(lambda: (zip_members(buffer.getvalue()))) == (
        "unreadable_file", "The zip holds a symbolic link.")


def test_an_implausible_compression_ratio_is_refused_with_its_message():
    assert refusal_of(lambda: (zip_members(zip_declaring([(MB + 1, 1)])))) == (
        "too_large", "The zip's compression ratio is implausible for images (a zip bomb?).")


def damaged_member() -> bytes:
    data = bytearray(zip_of({"IM0001.dcm": b"DICM" * 100}))
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 16, 0xDEADBEEF)  # a CRC-32 that the data do not have
    return bytes(data)


def encrypted_member() -> bytes:
    data = bytearray(zip_of({"IM0001.dcm": b"DICM" * 100}))
    central = data.index(b"PK\x01\x02")
    data[central + 8] |= 1  # general purpose flag: encrypted
    data[6] |= 1  # and in the local header
    return bytes(data)


@pytest.mark.parametrize("make", [damaged_member, encrypted_member], ids=["bad-crc", "encrypted"])
def test_a_member_that_cannot_be_extracted_is_refused_with_its_message(make):
    assert refusal_of(lambda: (zip_members(make()))) == (
        "unreadable_file", "A file in the zip could not be extracted (damaged or encrypted).")


def test_a_member_is_read_up_to_the_bytes_asked_for_or_whole():
    from pancscan.reading.archive import read_member, zip_entries

    data = tiny_ct(0)
    archive, (info,) = zip_entries(zip_of({"IM0001.dcm": data}))
    assert read_member(archive, info, 132) == data[:132] and read_member(archive, info) == data
