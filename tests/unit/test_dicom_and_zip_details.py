"""The DICOM slice reader and the zip reader in detail: exact Hounsfield units out of given stored
values, the orientation rules, both sides of each limit, and the exact reason and message of each
refusal (users see them)."""

import io
import math
import stat
import struct
import zipfile

import numpy as np
import pytest

from pancscan.reading.dicom import dicom_slice, parse_dicom, require_axial_ct
from pancscan.errors import ScanRejected
from tests.dicom_factory import ct_dataset, to_bytes, zip_members, zip_of
from tests.unit.test_zip_limits import zip_declaring

MB = 2**20
NOT_AXIAL = "The slices are not axial (sagittal, coronal or strongly tilted); send axial CT."
DAMAGED_DICOM = "The DICOM file is damaged or truncated."
UNSAFE_PATH = "The zip holds a file with an unsafe path (absolute or '..')."


def dataset(stored=((0, 1), (2, 3)), *, signed: bool = False, **tags):
    """An axial CT slice at z = 7.5 whose pixel data holds exactly ``stored``; each tag given is set,
    or deleted when given as None."""
    stored = np.asarray(stored, np.int16 if signed else np.uint16)
    ds = ct_dataset(np.zeros(stored.shape), z=7.5, signed=signed)
    ds.PixelData = stored.tobytes()
    for name, value in tags.items():
        if value is None:
            delattr(ds, name)
        else:
            setattr(ds, name, value)
    return ds


def read_slice(ds):
    """The slice as read from its file, its image left in HU (no windowing, no resizing)."""
    return dicom_slice(parse_dicom(to_bytes(ds)), lambda hu: hu)


def refusal(call, *args) -> tuple[str, str]:
    with pytest.raises(ScanRejected) as caught:
        call(*args)
    return caught.value.code, caught.value.message


# Hounsfield units


@pytest.mark.parametrize("stored, tags, hu", [
    ([[0, 1000], [2000, 4095]], {"RescaleSlope": 1, "RescaleIntercept": -1024}, [[-1024, -24], [976, 3071]]),
    ([[0, 10], [20, 30]], {"RescaleSlope": 2.5, "RescaleIntercept": -1000}, [[-1000, -975], [-950, -925]]),
    ([[0, 10], [20, 30]], {"RescaleSlope": 1, "RescaleIntercept": 0}, [[0, 10], [20, 30]]),
    ([[0, 10], [20, 30]], {"RescaleSlope": 3, "RescaleIntercept": None}, [[0, 30], [60, 90]]),  # no intercept: 0
    ([[0, 10], [20, 30]], {"RescaleSlope": None, "RescaleIntercept": -100}, [[-100, -90], [-80, -70]]),  # no slope: 1
    ([[0, 10], [20, 30]], {"RescaleSlope": "", "RescaleIntercept": -100}, [[-100, -90], [-80, -70]]),  # blank: 1
    ([[0, 10], [20, 30]], {"RescaleSlope": 0, "RescaleIntercept": -100}, [[-100, -90], [-80, -70]]),  # zero: 1
    ([[0, 10], [20, 30]], {"RescaleSlope": None, "RescaleIntercept": None}, [[0, 10], [20, 30]]),
])
def test_hounsfield_units_are_stored_values_times_slope_plus_intercept(stored, tags, hu):
    image = read_slice(dataset(stored, **tags)).image
    assert image.tolist() == hu
    assert image.dtype == np.float32  # half the memory of float64 for slices up to 4096 pixels a side


def test_signed_stored_values_keep_their_sign():
    ds = dataset([[-1000, -1], [0, 1000]], signed=True, RescaleSlope=1, RescaleIntercept=0)
    assert read_slice(ds).image.tolist() == [[-1000, -1], [0, 1000]]


def test_monochrome1_changes_the_display_only_not_the_hounsfield_units():
    ds = dataset([[0, 1000], [2000, 3000]], PhotometricInterpretation="MONOCHROME1")
    assert read_slice(ds).image.tolist() == [[-1024, -24], [976, 1976]]


def test_padding_values_become_air_and_other_values_do_not():
    ds = dataset([[63536, 0], [1064, 63535]], PixelPaddingValue=63536)
    assert read_slice(ds).image.tolist() == [[-1024, -1024], [40, 62511]]


# Refused pixel data


def test_pixel_data_that_cannot_be_decoded_is_refused_with_its_message():
    ds = dataset(np.zeros((4, 4)))
    ds.PixelData = ds.PixelData[:10]  # 10 of the 32 bytes that 4x4 16-bit pixels need
    assert refusal(read_slice, ds) == (
        "unreadable_file", "The DICOM image data cannot be decoded (unsupported compression or damaged).")


def test_a_multi_frame_image_is_refused_with_its_message():
    ds = dataset(np.zeros((4, 4)), NumberOfFrames=2)
    ds.PixelData = ds.PixelData * 2
    assert refusal(read_slice, ds) == (
        "unreadable_file", "Multi-frame or colour DICOM images are not supported; send single-frame CT slices.")


def test_an_image_of_4096_pixels_a_side_is_read():
    assert read_slice(dataset(np.zeros((1, 4096)))).image.shape == (1, 4096)


def test_an_image_over_4096_pixels_a_side_is_refused_with_its_message():
    assert refusal(read_slice, dataset(np.zeros((1, 4097)))) == (
        "too_large", "The DICOM image is over 4096 pixels a side.")


def test_an_element_damaged_in_the_file_is_refused_as_a_damaged_dicom():
    # an unknown VR on Modality raises NotImplementedError only when the value is first read
    data = bytearray(to_bytes(dataset()))
    at = data.index(bytes.fromhex("08006000") + b"CS")
    data[at + 4 : at + 6] = b"CC"
    ds = parse_dicom(bytes(data))
    assert refusal(dicom_slice, ds, lambda hu: hu) == ("unreadable_file", DAMAGED_DICOM)


# Modality and orientation


def test_an_mr_slice_is_not_decoded():
    item = read_slice(dataset(Modality="MR"))
    assert (item.modality, item.axial, item.image) == ("MR", True, None)


def test_a_sagittal_ct_slice_is_not_decoded():
    item = read_slice(dataset(ImageOrientationPatient=[0, 1, 0, 0, 0, -1]))
    assert (item.modality, item.axial, item.image) == ("CT", False, None)


@pytest.mark.parametrize("modality", [None, ""], ids=["absent", "blank"])
def test_a_slice_without_modality_is_refused_saying_no_modality_was_given(modality):
    item = read_slice(dataset(Modality=modality))
    assert item.modality == ""
    assert refusal(require_axial_ct, item.modality, item.axial) == (
        "unsupported_modality", "This is not CT (no modality given); PancScan's model reads CT only.")


def test_a_non_ct_modality_is_refused_naming_it():
    assert refusal(require_axial_ct, "MR", True) == (
        "unsupported_modality", "This is MR; PancScan's model reads CT only.")


def test_a_ct_that_is_not_axial_is_refused_with_its_message():
    assert refusal(require_axial_ct, "CT", False) == ("not_axial", NOT_AXIAL)


def test_axial_ct_is_accepted():
    assert require_axial_ct("CT", True) is None


@pytest.mark.parametrize("orientation", [None, [1, 0, 0, 0, 1]], ids=["absent", "five-values"])
def test_a_missing_or_malformed_orientation_counts_as_standard_axial(orientation):
    item = read_slice(dataset([[1, 2], [3, 4]], RescaleIntercept=0, ImageOrientationPatient=orientation))
    assert item.axial and item.image.tolist() == [[1, 2], [3, 4]]
    assert item.position == 7.5  # the z of ImagePositionPatient, along the standard normal (0, 0, 1)


@pytest.mark.parametrize("tags, position", [
    ({"ImagePositionPatient": None, "InstanceNumber": 5}, 5.0),
    ({"ImagePositionPatient": [-180, -180], "InstanceNumber": 5}, 5.0),  # a position needs all three coordinates
    ({"ImagePositionPatient": None, "InstanceNumber": None}, 0.0),
    ({"ImagePositionPatient": None, "InstanceNumber": ""}, 0.0),
], ids=["instance-5", "two-coordinates", "no-instance", "blank-instance"])
def test_without_a_position_a_slice_is_placed_by_its_instance_number_or_else_at_zero(tags, position):
    assert read_slice(dataset(**tags)).position == position


@pytest.mark.parametrize("column_y, axial", [(0.9, True), (0.8999, False)])
def test_a_slice_counts_as_axial_down_to_a_normal_cosine_of_0_9(column_y, axial):
    # rows along x, columns tilted towards z: the slice normal's z component is column_y
    orientation = [1, 0, 0, 0, column_y, round(math.sqrt(1 - column_y**2), 10)]
    assert read_slice(dataset(ImageOrientationPatient=orientation)).axial is axial


@pytest.mark.parametrize("orientation, flip", [
    ([1, 0, 0, 0, 1, 0], lambda a: a),
    ([-1, 0, 0, 0, 1, 0], lambda a: a[:, ::-1]),
    ([1, 0, 0, 0, -1, 0], lambda a: a[::-1, :]),
    ([-1, 0, 0, 0, -1, 0], lambda a: a[::-1, ::-1]),
    ([0.96, 0.28, 0, -0.28, 0.96, 0], lambda a: a),  # turned 16 degrees in-plane: rows and columns still run forward
    ([0, 1, 0, -1, 0, 0], lambda a: a),  # turned 90 degrees: neither runs backwards along x or y
], ids=["standard", "rows-reversed", "columns-reversed", "both-reversed", "turned-16", "turned-90"])
def test_only_rows_or_columns_that_run_backwards_are_flipped(orientation, flip):
    stored = np.arange(12).reshape(3, 4)
    image = read_slice(dataset(stored, RescaleIntercept=0, ImageOrientationPatient=orientation)).image
    assert image.tolist() == flip(stored).tolist()


# Technical attributes


def test_series_number_spacing_thickness_and_series_uid_are_read():
    item = read_slice(dataset(SeriesNumber=-3, PixelSpacing=[0.7, 0.8], SliceThickness=1.25, SeriesInstanceUID="1.2.3"))
    assert (item.series_number, item.pixel_spacing_mm, item.slice_thickness_mm, item.series_uid) == (
        -3, (0.7, 0.8), 1.25, "1.2.3")


@pytest.mark.parametrize("value", [None, ""], ids=["absent", "blank"])
def test_missing_technical_attributes_are_left_unknown(value):
    item = read_slice(dataset(SeriesNumber=value, PixelSpacing=value, SliceThickness=value, SeriesInstanceUID=value))
    assert item.image is not None
    assert (item.series_number, item.pixel_spacing_mm, item.slice_thickness_mm, item.series_uid) == (None, None, None, "")


def test_a_pixel_spacing_of_three_values_is_left_unknown():
    # a pixel spacing has two values: between rows and between columns
    assert read_slice(dataset(PixelSpacing=[0.7, 0.8, 0.9])).pixel_spacing_mm is None


def test_a_series_number_that_is_not_a_number_is_left_unknown_not_refused():
    data = bytearray(to_bytes(dataset(SeriesNumber=77)))
    at = data.index(bytes.fromhex("20001100") + b"IS")
    data[at + 8 : at + 10] = b"X3"  # the value "77" becomes "X3"
    item = dicom_slice(parse_dicom(bytes(data)), lambda hu: hu)
    assert item.series_number is None and item.image is not None


def test_a_file_without_the_dicm_marker_is_refused_with_its_message():
    data = bytearray(to_bytes(dataset()))
    data[128:132] = b"DICX"
    assert refusal(parse_dicom, bytes(data)) == ("unreadable_file", "Not a DICOM file (no DICM marker).")


def test_a_file_whose_header_cannot_be_parsed_is_refused_as_damaged():
    data = bytearray(to_bytes(dataset()))
    at = data.index(bytes.fromhex("02000000") + b"UL")
    struct.pack_into("<H", data, at + 6, 3)  # a 4-byte group length declared 3 bytes long
    assert refusal(parse_dicom, bytes(data)) == ("unreadable_file", DAMAGED_DICOM)


# Zip members


def test_a_damaged_zip_is_refused_with_its_message():
    assert refusal(lambda: (zip_members(b"PK\x03\x04" + b"\0" * 40))) == (
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
    assert refusal(lambda: (zip_members(zip_of({name: b"x"})))) == ("unreadable_file", UNSAFE_PATH)


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
    assert refusal(lambda: (zip_members(buffer.getvalue()))) == (
        "unreadable_file", "The zip holds a symbolic link.")


def test_an_implausible_compression_ratio_is_refused_with_its_message():
    assert refusal(lambda: (zip_members(zip_declaring([(MB + 1, 1)])))) == (
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
    assert refusal(lambda: (zip_members(make()))) == (
        "unreadable_file", "A file in the zip could not be extracted (damaged or encrypted).")
