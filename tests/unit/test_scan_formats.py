"""DICOM, DICOM series zips and NIfTI to model inputs: real files made with pydicom and nibabel."""

import functools
import gzip
import inspect
import io
import stat
import zipfile

import nibabel as nib
import numpy as np
import pytest
from pydicom.uid import JPEG2000Lossless, RLELossless, generate_uid

from pancscan.errors import ScanRejected
from pancscan.reading.nifti import gunzip_limited
from pancscan.reading.scan_input import read_scan
from tests.conftest import png_bytes
from tests.dicom_factory import PHI_STRINGS, ct_dataset, display_to_hu, series_zip, to_bytes, zip_of

SIZE = 64
WINDOW = (127.5, 255.0)  # HU clipped to 0..255


def hu_image(seed: int, shape=(SIZE, SIZE)) -> np.ndarray:
    """A CT-like HU image with a marker in the top-left corner (tells orientation apart)."""
    rng = np.random.default_rng(seed)
    hu = display_to_hu(rng.integers(40, 200, shape))
    hu[:8, :8] = 200.0
    hu[-2:, :] = -1000.0  # air, as around every body in CT
    return hu


def expected(hu: np.ndarray) -> np.ndarray:
    return np.clip(hu / 255.0, 0, 1)


def read(data: bytes):
    return read_scan(data, WINDOW, SIZE)


def rejected_code(data: bytes) -> str:
    with pytest.raises(ScanRejected) as caught:
        read(data)
    message = caught.value.message
    assert not any(s in message for s in PHI_STRINGS)
    return caught.value.code


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"slope": 0.5, "intercept": -1000.0},
        {"signed": True, "intercept": 0.0},
        {"photometric": "MONOCHROME1"},  # display polarity only: HU are the same
    ],
    ids=["plain", "rescaled", "signed", "monochrome1"],
)
def test_dicom_pixels_become_the_same_hounsfield_units(options):
    hu = hu_image(1)
    scan = read(to_bytes(ct_dataset(hu, **options)))
    assert not scan.is_series and scan.technical["format"] == "dicom"
    assert np.abs(scan.images[0] - expected(hu)).max() < 0.01


def test_padding_pixels_become_air():
    hu = hu_image(2)
    hu[-4:, :] = 63536 - 1024  # stored 63536 is the padding value below
    scan = read(to_bytes(ct_dataset(hu, padding=63536)))
    assert scan.images[0][-4:, :].max() == 0.0


def test_a_flipped_orientation_is_put_back_into_the_radiological_view():
    hu = hu_image(3)
    flipped = ct_dataset(hu[::-1, ::-1].copy(), orientation=(-1, 0, 0, 0, -1, 0))
    assert np.abs(read(to_bytes(flipped)).images[0] - expected(hu)).max() < 0.01


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless], ids=["rle", "jpeg2000"])
def test_compressed_dicom_is_decoded(syntax):
    # RLE: pydicom itself; JPEG 2000: the pylibjpeg-openjpeg plugin the runtime installs
    hu = hu_image(4)
    ds = ct_dataset(hu)
    ds.compress(syntax)
    assert np.abs(read(to_bytes(ds)).images[0] - expected(hu)).max() < 0.01


@pytest.mark.parametrize(
    "options,code",
    [({"modality": "MR"}, "unsupported_modality"), ({"orientation": (0, 1, 0, 0, 0, -1)}, "not_axial")],
    ids=["mr", "sagittal"],
)
def test_refused_dicom_get_their_reason(options, code):
    assert rejected_code(to_bytes(ct_dataset(hu_image(5), **options))) == code


@pytest.mark.parametrize("data", [b"", b"\0" * 128 + b"DICM" + b"\x02\x00" * 10, b"random bytes" * 50], ids=["empty", "truncated-dicom", "random"])
def test_broken_files_are_unreadable(data):
    assert rejected_code(data) == "unreadable_file"


def test_a_series_is_sorted_by_position_not_by_file_name_or_order():
    slices = [hu_image(10 + k) for k in range(6)]
    scan = read(series_zip(slices, shuffle_seed=7))
    assert scan.is_series and scan.technical == {"format": "dicom_series", "modality": "CT", "slices": 6,
                                                 "slice_thickness_mm": 2.5, "pixel_spacing_mm": [0.703125, 0.703125]}
    for image, hu in zip(scan.images, slices):
        assert np.abs(image - expected(hu)).max() < 0.01


def test_a_slice_whose_header_is_longer_than_the_first_bytes_read_takes_its_place_in_the_series():
    # headers are read from each member's first 16 KB; a longer one (a large private element) is read whole
    slices = [hu_image(30 + k) for k in range(3)]
    files = {}
    for k, hu in enumerate(slices):
        ds = ct_dataset(hu, z=2.5 * k, series_uid="1.2.3.4")
        if k == 1:
            ds.private_block(0x0013, "LONG HEADER", create=True).add_new(0x01, "OB", b"\0" * 40_000)
        files[f"IM{2 - k}.dcm"] = to_bytes(ds)
    scan = read(zip_of(files))
    assert scan.positions_mm == (0.0, 2.5, 5.0)
    for image, hu in zip(scan.images, slices):
        assert np.abs(image - expected(hu)).max() < 0.01


def test_a_series_is_decoded_only_at_the_slices_sampled_on_the_grid():
    slices = [hu_image(40 + k) for k in range(9)]  # 2.5 mm apart
    scan = read_scan(series_zip(slices, shuffle_seed=1), WINDOW, SIZE, grid_mm=5.0)
    assert scan.sampled == (0, 2, 4, 6, 8) and len(scan.images) == 5
    assert scan.positions_mm == tuple(2.5 * k for k in range(9))
    for image, k in zip(scan.images, scan.sampled):
        assert np.abs(image - expected(slices[k])).max() < 0.01


def test_only_the_sampled_slices_are_read_whole_the_others_up_to_their_header(monkeypatch):
    from pancscan.reading import scan_input

    reads = []
    real = scan_input.read_member
    monkeypatch.setattr(scan_input, "read_member", lambda archive, info, limit=None: reads.append(limit) or real(archive, info, limit))
    read_scan(series_zip([hu_image(40 + k) for k in range(9)]), WINDOW, SIZE, grid_mm=5.0)
    assert sorted(reads, key=str) == [scan_input.HEADER_BYTES] * 9 + [None] * 5  # nine headers, five sampled slices


def test_several_series_are_named_in_the_refusal_by_number_modality_and_size():
    made = {}
    for name, number, modality, files in (("seven", 7, "CT", 1), ("one", 1, "", 2), ("unnumbered", None, "MR", 1)):
        uid = generate_uid()
        for k in range(files):
            ds = ct_dataset(hu_image(50 + k), z=2.5 * k, series_uid=uid, series_number=number or 1)
            ds.Modality = modality
            if number is None:
                del ds.SeriesNumber
            made[f"{name}{k}.dcm"] = to_bytes(ds)
    with pytest.raises(ScanRejected) as refused:
        read(zip_of(made))  # the zip's order: seven, one, unnumbered
    assert (refused.value.code, refused.value.message) == ("too_many_series", (
        "The zip holds 3 series: series ? (MR, 1 files); series 1 (no modality, 2 files); series 7 (CT, 1 files). "
        "Send one series per upload."))


def test_reports_and_other_files_beside_the_images_are_passed_over():
    uid = generate_uid()
    report = ct_dataset(hu_image(60), series_uid=uid)
    del report.PixelData  # a report or presentation state exported with the study
    files = {"A_README.txt": b"viewer", "B_report.dcm": to_bytes(report)}
    files |= {f"C{k}.dcm": to_bytes(ct_dataset(hu_image(61 + k), z=2.5 * k, series_uid=uid)) for k in range(3)}
    assert read(zip_of(files)).technical["slices"] == 3


def test_a_zip_without_images_and_a_series_mixing_modalities_say_so():
    assert refusal_message(zip_of({"README.txt": b"hello"})) == ("empty_series", "The zip holds no DICOM image.")
    uid = generate_uid()
    mixed = {f"IM{k}.dcm": to_bytes(ct_dataset(hu_image(70 + k), z=2.5 * k, series_uid=uid)) for k in range(2)}
    other = ct_dataset(hu_image(72), z=5.0, series_uid=uid)
    other.Modality = "PT"
    mixed["IM2.dcm"] = to_bytes(other)
    assert refusal_message(zip_of(mixed)) == ("unsupported_modality", "The series mixes CT with other modalities; PancScan reads CT only.")


def refusal_message(data: bytes) -> tuple[str, str]:
    with pytest.raises(ScanRejected) as refused:
        read(data)
    return refused.value.code, refused.value.message


def test_two_series_are_refused_naming_them_without_patient_data():
    first = zipfile.ZipFile(io.BytesIO(series_zip([hu_image(20), hu_image(21)], series_number=3)))
    second = zipfile.ZipFile(io.BytesIO(series_zip([hu_image(22)], series_number=7)))
    files = {f"a/{n}": first.read(n) for n in first.namelist()} | {f"b/{n}": second.read(n) for n in second.namelist()}
    with pytest.raises(ScanRejected) as caught:
        read(zip_of(files))
    assert caught.value.code == "too_many_series"
    assert "series 3 (CT, 2 files)" in caught.value.message and "series 7 (CT, 1 files)" in caught.value.message
    assert not any(s in caught.value.message for s in PHI_STRINGS)


def test_an_mr_series_is_refused_as_unsupported_modality():
    mr = to_bytes(ct_dataset(hu_image(23), modality="MR", series_uid="1.2.3"))
    assert rejected_code(zip_of({"mr1": mr, "mr2": mr})) == "unsupported_modality"


def test_a_zip_without_dicom_is_an_empty_series():
    assert rejected_code(zip_of({"README.txt": b"hello", "DICOMDIR": b"x"})) == "empty_series"


def test_zip_bomb_is_refused_before_decompressing():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb.dcm", b"\0" * (60 * 1024 * 1024))
    assert rejected_code(buffer.getvalue()) == "too_large"


def test_path_traversal_and_symlinks_in_a_zip_are_refused():
    assert rejected_code(zip_of({"../../etc/evil.dcm": b"x"})) == "unreadable_file"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("link.dcm")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    assert rejected_code(buffer.getvalue()) == "unreadable_file"


def ras_volume(n: int = 5) -> tuple[np.ndarray, list[np.ndarray]]:
    """A RAS+ volume whose axial slices, in the radiological view, are known images."""
    views = [hu_image(30 + k) for k in range(n)]
    volume = np.stack([view.T[::-1, ::-1] for view in views], axis=2)  # inverse of radiological_axial
    return volume, views


def nifti_bytes(array: np.ndarray, affine: np.ndarray, compress: bool = False) -> bytes:
    data = nib.Nifti1Image(array.astype(np.int16), affine).to_bytes()
    return gzip.compress(data) if compress else data


@pytest.mark.parametrize("compress", [False, True], ids=["nii", "nii.gz"])
def test_nifti_in_any_axis_order_gives_the_radiological_slices(compress):
    volume, views = ras_volume()
    ras_affine = np.diag([0.7, 0.7, 2.5, 1.0])
    # Stored as LPS with the axes permuted (z, y, x): a non-identity affine nibabel must undo.
    stored = np.transpose(volume[::-1, ::-1, :], (2, 1, 0))
    affine = np.zeros((4, 4))
    affine[0, 2], affine[1, 1], affine[2, 0], affine[3, 3] = -0.7, -0.7, 2.5, 1.0
    for data in (nifti_bytes(volume, ras_affine, compress), nifti_bytes(stored, affine, compress)):
        scan = read(data)
        assert scan.is_series and scan.technical["format"] == "nifti" and scan.technical["slices"] == 5
        assert scan.technical["slice_thickness_mm"] == 2.5
        for image, view in zip(scan.images, views):
            assert np.abs(image - expected(view)).max() < 0.01


def test_nifti_that_is_not_ct_is_refused():
    volume = np.random.default_rng(0).integers(0, 2000, (SIZE, SIZE, 4))  # MR-like: never near -1000
    assert rejected_code(nifti_bytes(volume, np.eye(4))) == "unsupported_modality"


@pytest.mark.parametrize("limit, refused", [(8 * 2**20, False), (8 * 2**20 - 1, True)])
def test_gzip_is_decompressed_up_to_its_limit_and_no_further(limit, refused):
    data = gzip.compress(b"\0" * (8 * 2**20))
    if refused:
        with pytest.raises(ScanRejected) as caught:
            gunzip_limited(data, limit)
        assert caught.value.code == "too_large"
    else:
        assert len(gunzip_limited(data, limit)) == 8 * 2**20


def test_a_gzip_bomb_is_stopped_while_decompressing(monkeypatch):
    assert inspect.signature(gunzip_limited).parameters["limit"].default == 2**30  # 1 GB, as docs/model-and-data.md says
    monkeypatch.setattr("pancscan.reading.nifti.gunzip_limited", functools.partial(gunzip_limited, limit=2**20))  # a smaller bomb
    assert rejected_code(gzip.compress(b"\0" * (8 * 2**20))) == "too_large"


def test_reading_odd_header_values_logs_and_warns_nothing_that_quotes_them(caplog, recwarn):
    import logging

    ds = ct_dataset(hu_image(40))
    ds.SeriesInstanceUID = "1.2.PHINAME.3"  # invalid for its VR: pydicom would quote it in a warning
    ds.PatientName = "PHINAME^\x07bell"
    data = to_bytes(ds)
    recwarn.clear()  # making the file warned; reading it must not
    with caplog.at_level(logging.DEBUG):
        read(data)
    assert "PHINAME" not in caplog.text
    assert not any("PHINAME" in str(w.message) for w in recwarn)


@pytest.mark.parametrize("shape", [(0, 8, 4), (8, 0, 4), (8, 8, 0), (8, 8, 0, 1)])
def test_a_nifti_volume_with_a_zero_dimension_is_refused_as_empty(shape):
    # regression (found by hypothesis): a zeroed dimension once got through to the slicing
    with pytest.raises(ScanRejected) as caught:
        read(nib.Nifti1Image(np.zeros(shape, np.int16), np.eye(4)).to_bytes())
    assert caught.value.code == "unreadable_file" and "empty" in caught.value.message


def zip_of_datasets(datasets) -> bytes:
    return zip_of({f"IM{k:04d}.dcm": to_bytes(ds) for k, ds in enumerate(datasets)})


def test_positions_count_from_the_lowest_slice_wherever_the_scanner_put_the_patient():
    uid = generate_uid()
    # 3 mm apart, slices 2.5 mm thick: the positions, not the thickness, place them
    scan = read(zip_of_datasets([ct_dataset(hu_image(10 + k), z=-350.0 + 3.0 * k, series_uid=uid) for k in range(3)]))
    assert scan.positions_mm == (0.0, 3.0, 6.0) and scan.technical["slice_thickness_mm"] == 2.5


@pytest.mark.parametrize("thickness, positions", [(3.0, (0.0, 3.0, 6.0)), (None, (0.0, 2.5, 5.0))], ids=["thickness", "neither"])
def test_without_positions_slices_are_a_slice_thickness_apart_else_a_typical_spacing(thickness, positions):
    uid, made = generate_uid(), []
    for k in range(3):
        ds = ct_dataset(hu_image(10 + k), z=2.5 * k, series_uid=uid)
        del ds.ImagePositionPatient
        if thickness is None:
            del ds.SliceThickness
        else:
            ds.SliceThickness = thickness
        made.append(ds)
    assert read(zip_of_datasets(made)).positions_mm == positions
    assert read(zip_of_datasets(made[:1])).positions_mm == (0.0,)


def test_a_series_without_pixel_spacing_says_so():
    uid, made = generate_uid(), []
    for k in range(2):
        ds = ct_dataset(hu_image(10 + k), z=2.5 * k, series_uid=uid)
        del ds.PixelSpacing
        made.append(ds)
    assert read(zip_of_datasets(made)).technical["pixel_spacing_mm"] is None


def nifti_volume(slices: int, thickness: float) -> bytes:
    hu = np.full((8, 8, slices), -1000, np.int16)  # air around a little soft tissue, as CT
    hu[2:6, 2:6] = 40
    return nifti_bytes(hu, np.diag([0.70312, 0.70318, thickness, 1.0]))


def test_a_nifti_volume_says_what_it_is_and_where_each_slice_lies():
    scan = read(nifti_volume(4, 0.81234))
    assert scan.technical == {"format": "nifti", "modality": "CT", "slices": 4, "slice_thickness_mm": 0.812,
                              "pixel_spacing_mm": [0.7032, 0.7031]}  # rows (y) first
    assert scan.positions_mm == pytest.approx((0.0, 0.81234, 1.62468, 2.43702)) and scan.sampled == (0, 1, 2, 3)
    assert scan.is_series and len(scan.images) == 4 and scan.images[0].shape == (SIZE, SIZE)
    assert read_scan(nifti_volume(4, 0.81234), WINDOW, SIZE, grid_mm=1.6).sampled == (0, 2, 3)


def test_a_nifti_volume_of_exactly_1000_slices_is_read():
    assert read_scan(nifti_volume(1000, 1.0), WINDOW, 8, grid_mm=10_000.0).technical["slices"] == 1000


def test_a_fine_series_read_without_a_grid_keeps_every_slice():
    scan = read(series_zip([hu_image(80 + k) for k in range(4)], spacing=0.5))
    assert scan.sampled == (0, 1, 2, 3) and len(scan.images) == 4


def test_the_window_given_is_the_window_used():
    hu = hu_image(90)
    scan = read_scan(to_bytes(ct_dataset(hu)), (40.0, 400.0), SIZE)  # a soft-tissue window, not the default
    assert not scan.is_series and np.abs(scan.images[0] - np.clip((hu - (40.0 - 200.0)) / 400.0, 0, 1)).max() < 0.01


def test_an_image_is_resized_to_the_size_asked_and_a_colour_one_is_marked():
    grey = read_scan(png_bytes(np.full((32, 32), 90)), WINDOW, SIZE)
    assert (grey.images[0].shape, grey.is_series, grey.is_colour, grey.technical) == ((SIZE, SIZE), False, False, {"format": "png"})
    colour = np.zeros((32, 32, 3))
    colour[..., 0] = 200
    assert read_scan(png_bytes(colour, "RGB"), WINDOW, SIZE).is_colour is True


def test_an_unknown_file_says_which_formats_are_read():
    with pytest.raises(ScanRejected) as refused:
        read(b"GIF89a not a scan")
    assert (refused.value.code, refused.value.message) == ("unreadable_file", "Not a PNG, JPEG, DICOM, zip (DICOM series) or NIfTI file.")
