"""DICOM series, MR and NIfTI through the running local stack; no patient data anywhere."""

import base64
import gzip
import io
import json
import zipfile

import nibabel as nib
import numpy as np
import pytest
import requests
from PIL import Image

from tests.dicom_factory import PHI_STRINGS, ct_dataset, display_to_hu, series_zip, to_bytes, zip_of
from tests.e2e.test_local_stack import BUCKET, TABLE, submit, wait_for_result


@pytest.fixture(scope="module")
def series(nih_slices) -> bytes:
    patients = [s.patient for s in nih_slices]
    patient = max(set(patients), key=patients.count)
    return series_zip([display_to_hu(s.image) for s in nih_slices if s.patient == patient], shuffle_seed=11)


def assert_no_phi(*texts: str) -> None:
    for text in texts:
        for secret in PHI_STRINGS:
            assert secret not in text


def with_phi_names(series: bytes) -> bytes:
    """The series with member names as some exports write them: patient name and id in the path."""
    original = zipfile.ZipFile(io.BytesIO(series))
    return zip_of({f"Doe^Jane^PHINAME/PHIID-98765/{name}": original.read(name) for name in original.namelist()})


def test_a_dicom_series_zip_gets_a_scan_level_result_with_its_slice_and_no_patient_data(local_stack, series):
    scan = submit(local_stack, series, filename="scan.zip", content_type="application/zip")
    result = wait_for_result(local_stack, scan)
    assert result["status"] == "complete" and result["series"]["slices"] >= 3
    assert result["technical"]["format"] == "dicom_series"
    assert Image.open(io.BytesIO(base64.b64decode(result["slice_image"]["data"]))).size == (256, 256)
    assert local_stack.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="uploads/")["KeyCount"] == 0
    # what stays is the result's slice sheets: one JPEG and one PNG for up to 64 scored slices
    assert local_stack.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"results/{scan['scan_id']}/")["KeyCount"] == 2
    item = local_stack.client("dynamodb").get_item(TableName=TABLE, Key={"scan_id": {"S": scan["scan_id"]}})["Item"]
    assert_no_phi(json.dumps(result), str(item), local_stack.log_about(scan["scan_id"]))


def test_patient_data_in_the_zips_file_names_goes_nowhere(local_stack, series):
    scan = submit(local_stack, with_phi_names(series), filename="scan.zip", content_type="application/zip")
    result = wait_for_result(local_stack, scan)
    assert result["status"] == "complete"
    item = local_stack.client("dynamodb").get_item(TableName=TABLE, Key={"scan_id": {"S": scan["scan_id"]}})["Item"]
    assert_no_phi(json.dumps(result), str(item), local_stack.log_about(scan["scan_id"]))


def test_an_mr_dicom_is_refused_with_its_reason(local_stack, nih_slices):
    mr = to_bytes(ct_dataset(display_to_hu(nih_slices[0].image), modality="MR"))
    scan = submit(local_stack, mr, filename="scan.dcm", content_type="application/dicom")
    result = wait_for_result(local_stack, scan)
    assert result["status"] == "rejected" and result["reason"]["code"] == "unsupported_modality"
    assert_no_phi(json.dumps(result), local_stack.log_about(scan["scan_id"]))


def test_unsupported_upload_types_are_refused_before_upload(local_stack):
    answer = requests.post(f"{local_stack.url}/v1/scans", json={"filename": "x.gif", "content_type": "image/gif", "size": 10})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "unsupported_type"


def damaged(data: bytes) -> bytes:
    """The zip with bytes of its first member's compressed data overwritten: it fails to extract."""
    broken = bytearray(data)
    broken[200:240] = b"\xff" * 40  # past the local header (30 bytes and the name), inside the data
    return bytes(broken)


def _bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb.dcm", b"\0" * (80 * 1024 * 1024))
    return buffer.getvalue()


def _two_series(nih_slices) -> bytes:
    first = zipfile.ZipFile(io.BytesIO(series_zip([display_to_hu(nih_slices[0].image)], series_number=2)))
    second = zipfile.ZipFile(io.BytesIO(series_zip([display_to_hu(nih_slices[1].image)], series_number=5)))
    return zip_of({f"a/{n}": first.read(n) for n in first.namelist()} | {f"b/{n}": second.read(n) for n in second.namelist()})


@pytest.mark.parametrize(
    "make,content_type,code",
    [
        (lambda _: _bomb(), "application/zip", "too_large"),
        (lambda _: zip_of({"../../escape.dcm": b"x"}), "application/zip", "unreadable_file"),
        (lambda _: zip_of({"../Doe^Jane^PHINAME/PHIID-98765.dcm": b"x"}), "application/zip", "unreadable_file"),
        (lambda s: damaged(with_phi_names(series_zip([display_to_hu(s[0].image)]))), "application/zip", "unreadable_file"),
        (_two_series, "application/zip", "too_many_series"),
        (lambda _: zip_of({"notes.txt": b"no images here"}), "application/zip", "empty_series"),
    ],
    ids=["zip-bomb", "path-traversal", "traversal-named-with-patient-data", "damaged-named-with-patient-data", "two-series", "no-dicom"],
)
def test_hostile_and_wrong_zips_are_refused_with_their_reason_and_deleted(local_stack, nih_slices, make, content_type, code):
    scan = submit(local_stack, make(nih_slices), filename="scan.zip", content_type=content_type)
    result = wait_for_result(local_stack, scan)
    assert result["status"] == "rejected" and result["reason"]["code"] == code
    assert local_stack.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="uploads/")["KeyCount"] == 0
    assert_no_phi(json.dumps(result), local_stack.log_about(scan["scan_id"]))


def test_a_nifti_volume_gets_a_scan_level_result_through_the_stack(local_stack, nih_slices):
    ras = np.stack([display_to_hu(s.image).T[::-1, ::-1] for s in nih_slices[:4]], axis=2)
    data = gzip.compress(nib.Nifti1Image(ras[::-1, ::-1, :].astype(np.int16), np.diag([-0.7, -0.7, 2.5, 1.0])).to_bytes())
    result = wait_for_result(local_stack, submit(local_stack, data, filename="scan.nii.gz", content_type="application/gzip"))
    assert result["status"] == "complete" and result["series"]["slices"] == 4 and result["technical"]["format"] == "nifti"
