"""The DICOM slice reader (pancscan.reading.dicom) in detail: exact Hounsfield units out of given
stored values, the orientation rules, both sides of each limit, and the exact reason and message of
each refusal (users see them)."""

import math
import struct
import warnings

import numpy as np
import pytest

from pancscan.reading.dicom import dicom_slice, parse_dicom, require_axial_ct
from pancscan.reading.scan_input import read_scan
from tests.conftest import refusal_of
from tests.dicom_factory import ct_dataset, to_bytes

NOT_AXIAL = "The slices are not axial (sagittal, coronal or strongly tilted); send axial CT."
DAMAGED_DICOM = "The DICOM file is damaged or truncated."


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
    assert refusal_of(read_slice, ds) == (
        "unreadable_file", "The DICOM image data cannot be decoded (unsupported compression or damaged).")


def test_a_multi_frame_image_is_refused_with_its_message():
    ds = dataset(np.zeros((4, 4)), NumberOfFrames=2)
    ds.PixelData = ds.PixelData * 2
    assert refusal_of(read_slice, ds) == (
        "unreadable_file", "Multi-frame or colour DICOM images are not supported; send single-frame CT slices.")


def test_an_image_of_4096_pixels_a_side_is_read():
    assert read_slice(dataset(np.zeros((1, 4096)))).image.shape == (1, 4096)


def test_an_image_over_4096_pixels_a_side_is_refused_with_its_message():
    assert refusal_of(read_slice, dataset(np.zeros((1, 4097)))) == (
        "too_large", "The DICOM image is over 4096 pixels a side.")


def test_an_element_damaged_in_the_file_is_refused_as_a_damaged_dicom():
    # an unknown VR on Modality raises NotImplementedError only when the value is first read
    data = bytearray(to_bytes(dataset()))
    at = data.index(bytes.fromhex("08006000") + b"CS")
    data[at + 4 : at + 6] = b"CC"
    ds = parse_dicom(bytes(data))
    assert refusal_of(dicom_slice, ds, lambda hu: hu) == ("unreadable_file", DAMAGED_DICOM)


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
    assert refusal_of(require_axial_ct, item.modality, item.axial) == (
        "unsupported_modality", "This is not CT (no modality given); PancScan's model reads CT only.")


def test_a_non_ct_modality_is_refused_naming_it():
    assert refusal_of(require_axial_ct, "MR", True) == (
        "unsupported_modality", "This is MR; PancScan's model reads CT only.")


def test_a_ct_that_is_not_axial_is_refused_with_its_message():
    assert refusal_of(require_axial_ct, "CT", False) == ("not_axial", NOT_AXIAL)


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
    assert refusal_of(parse_dicom, bytes(data)) == ("unreadable_file", "Not a DICOM file (no DICM marker).")


def test_a_file_whose_header_cannot_be_parsed_is_refused_as_damaged():
    data = bytearray(to_bytes(dataset()))
    at = data.index(bytes.fromhex("02000000") + b"UL")
    struct.pack_into("<H", data, at + 6, 3)  # a 4-byte group length declared 3 bytes long
    assert refusal_of(parse_dicom, bytes(data)) == ("unreadable_file", DAMAGED_DICOM)


# DICOM objects without an image


def dicom_without_image(modality: str | None) -> bytes:
    ds = ct_dataset(np.zeros((4, 4)))
    del ds.PixelData
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns of lower-case CS values as they are set
        if modality is None:
            del ds.Modality
        else:
            ds.Modality = modality
        return to_bytes(ds)


def read(data: bytes):
    return read_scan(data, (127.5, 255.0), 8)


@pytest.mark.parametrize("modality, named", [("MR", "MR"), ("SR", "SR"), ("sr", "SR")])
def test_a_non_ct_object_without_an_image_is_refused_as_its_modality(modality, named):
    assert refusal_of(read, dicom_without_image(modality)) == (
        "unsupported_modality", f"This is {named}; PancScan's model reads CT only.")


@pytest.mark.parametrize("modality", ["CT", "ct", "", None], ids=["CT", "ct", "blank", "absent"])
def test_a_ct_or_unlabelled_object_without_an_image_is_unreadable(modality):
    assert refusal_of(read, dicom_without_image(modality)) == ("unreadable_file", "The DICOM file holds no image.")
