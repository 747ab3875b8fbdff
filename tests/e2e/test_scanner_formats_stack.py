"""DICOM series, MR and NIfTI through the running local stack; no patient data anywhere."""

import base64
import io
import json

import numpy as np
import pytest
import requests
from PIL import Image

from tests.dicom_factory import PHI_STRINGS, ct_dataset, display_to_hu, series_zip, to_bytes
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


def test_a_dicom_series_zip_gets_a_scan_level_result_with_its_slice_and_no_patient_data(local_stack, series):
    scan = submit(local_stack, series, filename="scan.zip", content_type="application/zip")
    result = wait_for_result(local_stack, scan)
    assert result["status"] == "complete" and result["series"]["slices"] >= 3
    assert result["technical"]["format"] == "dicom_series"
    assert Image.open(io.BytesIO(base64.b64decode(result["slice_image"]["data"]))).size == (256, 256)
    assert local_stack.client("s3").list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0
    item = local_stack.client("dynamodb").get_item(TableName=TABLE, Key={"scan_id": {"S": scan["scan_id"]}})["Item"]
    assert_no_phi(json.dumps(result), str(item), local_stack.log.read_text())


def test_an_mr_dicom_is_refused_with_its_reason(local_stack, nih_slices):
    mr = to_bytes(ct_dataset(display_to_hu(nih_slices[0].image), modality="MR"))
    result = wait_for_result(local_stack, submit(local_stack, mr, filename="scan.dcm", content_type="application/dicom"))
    assert result["status"] == "rejected" and result["reason"]["code"] == "unsupported_modality"
    assert_no_phi(json.dumps(result), local_stack.log.read_text())


def test_unsupported_upload_types_are_refused_before_upload(local_stack):
    answer = requests.post(f"{local_stack.url}/v1/scans", json={"filename": "x.gif", "content_type": "image/gif", "size": 10})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "unsupported_type"
