"""Scanner formats with the shipped model: DICOM agrees with PNG/JPEG; series and volumes get a
scan-level result; no patient data from the headers comes out of the CLI."""

import gzip
import json

import nibabel as nib
import numpy as np
import pytest

from pancscan.detection.predict import predict_bytes
from pancscan_cli.main import main
from tests.conftest import png_bytes
from tests.dicom_factory import PHI_STRINGS, ct_dataset, display_to_hu, series_zip, to_bytes


@pytest.fixture(scope="module")
def patient_hu(nih_slices):
    """One patient's slices as HU in the standard (radiological) orientation."""
    patient = nih_slices[0].patient
    return [display_to_hu(s.image) for s in nih_slices if s.patient == patient]


def test_a_dicom_built_from_hounsfield_units_and_the_png_of_the_same_slice_give_the_same_probability(
        nih_slices, msd_slices, shipped_model):
    # The DICOM carries HU that do not come from any window: tissue as the slice says, fat (-100 HU)
    # inside the body and air (-1000 HU) outside it where the slice is 0. The PNG is the slice itself,
    # HU clipped to 0..255. Converted with any other window (W400/L40 before), the two disagree.
    from pancscan_model.dicom_series import AIR_HU, FAT_HU

    for item in nih_slices[::100] + msd_slices[::500]:
        hu = display_to_hu(item.image)
        assert {AIR_HU, FAT_HU} <= set(np.unique(hu)) and hu.max() > 50
        from_png = predict_bytes(png_bytes(np.clip(hu, 0, 255)), shipped_model)
        from_dicom = predict_bytes(to_bytes(ct_dataset(hu)), shipped_model)
        assert from_png.status == from_dicom.status == "complete", item.name
        assert abs(from_png.probability - from_dicom.probability) <= 0.02, item.name
        assert from_dicom.technical["format"] == "dicom" and from_dicom.technical["modality"] == "CT"


def test_a_dicom_series_zip_gets_a_scan_level_result_and_the_cli_prints_no_patient_data(patient_hu, tmp_path, capsys):
    archive = tmp_path / "series.zip"
    archive.write_bytes(series_zip(patient_hu, shuffle_seed=3))
    assert main(["predict", "--json", str(archive)]) == 0
    assert main(["predict", str(archive)]) == 0
    out = capsys.readouterr()
    result = json.loads(out.out.splitlines()[0])
    assert result["status"] == "complete" and result["label"] in ("cancer_detected", "no_cancer_detected")
    series = result["series"]
    assert series["slices"] == len(patient_hu) and 0 <= series["most_suspicious_slice"] < len(patient_hu)
    assert len(series["slice_probabilities"]) == len(patient_hu)
    top = series["slice_probabilities"][series["most_suspicious_slice"]]
    assert top == max(p for p in series["slice_probabilities"] if p is not None)
    assert result["technical"] == {"format": "dicom_series", "modality": "CT", "slices": len(patient_hu),
                                   "slice_thickness_mm": 2.5, "pixel_spacing_mm": [0.703125, 0.703125]}
    assert "most suspicious slice" in out.out
    for secret in PHI_STRINGS:
        assert secret not in out.out and secret not in out.err


def test_a_folder_of_dicom_files_is_read_as_a_series(patient_hu, tmp_path, capsys, shipped_model):
    folder = tmp_path / "export"
    folder.mkdir()
    for k, hu in enumerate(patient_hu):
        (folder / f"IM{k:03d}").write_bytes(to_bytes(ct_dataset(hu, z=2.5 * k, series_uid="1.2.3.4")))
    assert main(["predict", "--json", str(folder)]) == 0
    assert json.loads(capsys.readouterr().out)["series"]["slices"] == len(patient_hu)


def test_an_mr_file_is_refused_through_the_cli(tmp_path, capsys, patient_hu):
    path = tmp_path / "mr.dcm"
    path.write_bytes(to_bytes(ct_dataset(patient_hu[0], modality="MR")))
    assert main(["predict", "--json", str(path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "rejected" and result["reason"]["code"] == "unsupported_modality"


def test_a_nifti_volume_with_an_oblique_free_non_identity_affine_gets_a_scan_level_result(patient_hu, tmp_path, capsys):
    # radiological slices -> RAS+ volume -> stored as LPS (x and y reversed), affine to match
    ras = np.stack([hu.T[::-1, ::-1] for hu in patient_hu], axis=2)
    lps = ras[::-1, ::-1, :]
    affine = np.diag([-0.7, -0.7, 2.5, 1.0])
    path = tmp_path / "volume.nii.gz"
    path.write_bytes(gzip.compress(nib.Nifti1Image(lps.astype(np.int16), affine).to_bytes()))
    assert main(["predict", "--json", str(path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "complete" and result["series"]["slices"] == len(patient_hu)
    assert result["technical"]["format"] == "nifti"
