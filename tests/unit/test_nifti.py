"""The NIfTI reader (pancscan.reading.nifti) in detail: the exact reason and message of each refusal
(users see them), both sides of each limit, and the values that come out (HU, spacing after
reorientation)."""

import gzip
import struct
import tracemalloc

import nibabel as nib
import numpy as np
import pytest

from pancscan.errors import ScanRejected
from pancscan.reading import nifti
from pancscan.reading.nifti import gunzip_limited, is_nifti, radiological_axial, read_nifti
from tests.conftest import refusal_of

MB = 2**20
NOT_CT = "The volume's values do not look like CT Hounsfield units (MR?); PancScan's model reads CT only."
DAMAGED_HEADER = "The NIfTI file is damaged, or not NIfTI-1."
DAMAGED_DATA = "The NIfTI file is damaged (its data or its affine)."


def nifti_bytes(array, affine=None, *, slope: float = 1.0, inter: float = 0.0, dim=None) -> bytes:
    """A single-file NIfTI-1 of ``array`` (stored as int16), with scl_slope/scl_inter written into
    the header as given and, if ``dim`` is given, the header's dim field claiming that shape."""
    image = nib.Nifti1Image(np.asarray(array, np.int16), np.eye(4) if affine is None else affine)
    data = bytearray(image.to_bytes())
    struct.pack_into("<ff", data, 112, slope, inter)  # scl_slope, scl_inter
    if dim is not None:
        struct.pack_into("<8h", data, 40, len(dim), *dim, *[1] * (7 - len(dim)))
    return bytes(data)


def ct_volume(shape=(4, 5, 3)) -> np.ndarray:
    """Stored values 0..1000 with some air (-1000), so that the volume reads as CT unscaled."""
    raw = np.random.default_rng(0).integers(0, 1000, shape)
    raw[0, 0, 0] = -1000
    return raw


# is_nifti


def test_gzip_data_counts_as_nifti():
    assert is_nifti(gzip.compress(b"anything"))


@pytest.mark.parametrize("magic", [b"n+1\x00", b"ni1\x00"], ids=["single-file", "header-of-a-pair"])
def test_a_bare_348_byte_header_with_either_magic_is_nifti(magic):
    header = bytearray(nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4)).to_bytes()[:348])
    header[344:348] = magic
    assert is_nifti(bytes(header))
    assert not is_nifti(bytes(header[:347]))  # one byte short of a header


def test_348_bytes_without_the_magic_are_not_nifti():
    assert not is_nifti(b"\0" * 348)
    assert not is_nifti(b"\0" * 344 + b"n+2\x00")  # NIfTI-2 is not read


# gunzip_limited


def test_damaged_gzip_is_refused_as_unreadable():
    damaged = b"\x1f\x8b" + b"\xff" * 64
    assert refusal_of(gunzip_limited, damaged) == ("unreadable_file", "The .gz file is damaged.")
    assert refusal_of(read_nifti, damaged) == ("unreadable_file", "The .gz file is damaged.")


def test_the_too_large_message_gives_the_limit_in_whole_megabytes():
    limit = 3 * MB + 12345  # not a power of two: 3 MB, not 3.01 MB
    assert refusal_of(gunzip_limited, gzip.compress(bytes(4 * MB)), limit) == (
        "too_large", "The volume expands to over 3 MB.")


def test_data_of_exactly_the_limit_is_returned_whole():
    limit = 3 * MB + 12345
    data = bytes(range(256)) * (limit // 256) + b"x" * (limit % 256)
    assert gunzip_limited(gzip.compress(data), limit) == data
    assert refusal_of(gunzip_limited, gzip.compress(data + b"y"), limit)[0] == "too_large"


def test_a_gzip_bomb_never_expands_in_memory_beyond_the_limit():
    bomb = gzip.compress(bytes(64 * MB), compresslevel=1)
    tracemalloc.start()
    try:
        with pytest.raises(ScanRejected):
            gunzip_limited(bomb, MB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * MB  # the limit plus a little, not the 64 MB the bomb expands to


# read_nifti: refusals


@pytest.mark.parametrize("data", [
    b"\0" * 400,  # no NIfTI header at all
    nifti_bytes(ct_volume(), slope=2.0, inter=float("nan")),  # a valid slope with no valid intercept
], ids=["zeros", "nan-intercept"])
def test_a_broken_header_is_refused_as_damaged_or_not_nifti(data):
    assert refusal_of(read_nifti, data) == ("unreadable_file", DAMAGED_HEADER)


@pytest.mark.parametrize("shape", [(4, 4), (4, 4, 4, 2)], ids=["2-d", "4-d"])
def test_only_3d_volumes_are_read(shape):
    data = nib.Nifti1Image(np.full(shape, -1000, np.int16), np.eye(4)).to_bytes()
    assert refusal_of(read_nifti, data) == ("unreadable_file", "Only 3-D NIfTI volumes are supported.")


def test_a_4d_volume_of_one_frame_is_read_as_3d():
    raw = ct_volume((4, 5, 3))
    volume = read_nifti(nifti_bytes(raw[..., np.newaxis]))
    assert volume.ras.shape == (4, 5, 3) and len(volume) == 3
    assert volume.slice_hu(0).shape == (5, 4)


def test_an_empty_volume_is_refused_with_its_message():
    data = nib.Nifti1Image(np.zeros((4, 0, 4), np.int16), np.eye(4)).to_bytes()
    assert refusal_of(read_nifti, data) == ("unreadable_file", "The NIfTI volume is empty.")


def test_a_header_claiming_over_512x512x1000_voxels_is_refused_before_reading_data():
    data = nifti_bytes(ct_volume((2, 2, 2)), dim=(512, 512, 1001))  # 8 voxels of data in the file
    assert refusal_of(read_nifti, data) == ("too_large", "The volume has over 262144000 voxels.")


def test_the_voxel_limit_admits_a_volume_of_exactly_the_limit(monkeypatch):
    monkeypatch.setattr(nifti, "MAX_VOXELS", 4 * 5 * 3)
    assert len(read_nifti(nifti_bytes(ct_volume((4, 5, 3))))) == 3
    assert refusal_of(read_nifti, nifti_bytes(ct_volume((4, 5, 4)))) == ("too_large", "The volume has over 60 voxels.")


def test_truncated_data_is_refused_as_damaged():
    data = nifti_bytes(ct_volume((2, 2, 2)), dim=(8, 8, 8))
    assert refusal_of(read_nifti, data) == ("unreadable_file", DAMAGED_DATA)


def test_an_affine_with_a_zero_axis_is_refused_as_damaged():
    data = bytearray(nifti_bytes(ct_volume()))
    struct.pack_into("<4f", data, 296, 0, 0, 0, 0)  # srow_y (the sform nibabel uses): no y axis
    assert refusal_of(read_nifti, bytes(data)) == ("unreadable_file", DAMAGED_DATA)


# read_nifti: values


def test_hounsfield_units_are_stored_values_times_slope_plus_intercept():
    raw = ct_volume().clip(0)  # 0..999: CT only through the intercept
    volume = read_nifti(nifti_bytes(raw, slope=2.0, inter=-1024.0))
    assert (volume.slope, volume.inter) == (2.0, -1024.0)
    for k in range(3):
        hu = volume.slice_hu(k)
        assert hu.dtype == np.float32
        np.testing.assert_array_equal(hu, radiological_axial(raw, k) * 2.0 - 1024.0)


@pytest.mark.parametrize("slope", [float("nan"), 0.0], ids=["nan", "zero"])
def test_a_nan_or_zero_slope_leaves_values_unscaled(slope):
    # NIfTI-1: without a valid slope there is no scaling at all, so the intercept goes too
    raw = ct_volume()
    volume = read_nifti(nifti_bytes(raw, slope=slope, inter=-1024.0))
    assert (volume.slope, volume.inter) == (1.0, 0.0)
    np.testing.assert_array_equal(volume.slice_hu(1), radiological_axial(raw, 1))


def test_spacing_and_thickness_are_reported_along_ras_axes_after_reorientation():
    # stored axes run (superior-inferior 3 mm, anterior-posterior 0.75 mm, right-left 0.5 mm)
    affine = np.zeros((4, 4))
    affine[2, 0], affine[1, 1], affine[0, 2], affine[3, 3] = 3.0, -0.75, -0.5, 1.0
    volume = read_nifti(nifti_bytes(ct_volume((3, 5, 4)), affine))
    assert volume.ras.shape == (4, 5, 3)
    assert volume.slice_thickness_mm == 3.0
    assert volume.pixel_spacing_mm == (0.75, 0.5)  # (rows: anterior-posterior, columns: right-left)


@pytest.mark.parametrize("lowest_raw, top_raw, slope, inter, is_ct", [
    (-500, 400, 1.0, 0.0, True),  # exactly -500 HU: CT
    (-499, 400, 1.0, 0.0, False),  # one above: not CT
    (0, 400, 1.0, -500.0, True),  # -500 HU through the intercept
    (-250, 400, 2.0, 0.0, True),  # -500 HU through the slope
    (-249, 400, 2.0, 0.0, False),
    (0, 250, -2.0, 0.0, True),  # a negative slope: the lowest HU come from the highest stored value
    (0, 249, -2.0, 0.0, False),
], ids=["-500", "-499", "intercept", "slope", "slope-above", "negative-slope", "negative-slope-above"])
def test_the_lowest_hounsfield_value_must_reach_minus_500_to_count_as_ct(lowest_raw, top_raw, slope, inter, is_ct):
    raw = np.full((4, 4, 3), top_raw)
    raw[1, 2, 1] = lowest_raw
    data = nifti_bytes(raw, slope=slope, inter=inter)
    if is_ct:
        assert len(read_nifti(data)) == 3
    else:
        assert refusal_of(read_nifti, data) == ("unsupported_modality", NOT_CT)
