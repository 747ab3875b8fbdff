"""Details clients and the page rely on: the exact JSON of a scan and of error answers, the published
OpenAPI document, the result PNGs, and what process_upload reports and records."""

import base64
import io
import json
import time

import numpy as np
import pytest
from PIL import Image

from pancscan.service import scans
from pancscan.errors import FAILURE_CODES
from pancscan.service.inference import Outcome, ProcessingError, UploadMissing, grey_png, process_upload, result_pngs, take_upload
from pancscan.detection.predict import ScanResult
from pancscan_local.lambda_runtime import LocalContext
from tests.fakes import InMemoryScanStore, InMemoryUploadStore
from tests.unit.test_handlers import api, api_event, api_for_hospitals, as_client, env  # noqa: F401 (fixtures)
from tests.unit.test_inference_process import CountingScorer, DeclaredLengthTrustingStore, new_world

MAX = 10_000
HEAT = np.array([[0.0, 0.25], [0.5, 1.0]], np.float32)
SLICE = np.array([[1.0, 0.0], [0.0, 0.5]], np.float32)


def decoded(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.mode == "L"
    return np.asarray(image)


def stored_scan(table) -> tuple[scans.ScanRecord, str]:
    record, token = scans.new_scan(scans.UploadRequest("a.dcm", "application/dicom", 10), now=int(time.time()), ttl_seconds=3600)
    table.create(record)
    return record, token


# --- the API's answers ---------------------------------------------------------------------------


def test_reading_a_scan_returns_its_exact_public_view(api):
    handler, table = api
    record, token = scans.new_scan(scans.UploadRequest("a.dcm", "application/dicom", 10), now=int(time.time()), ttl_seconds=3600)
    record.status = scans.COMPLETE
    record.result = {"label": "no_cancer_detected", "probability": 0.2, "confidence": 0.8, "threshold": 0.7,
                     "model_version": "v1", "reason": None, "series": None, "technical": {"format": "dicom"}}
    record.heatmap_png, record.slice_png = b"heat-png", b"slice-png"
    table.create(record)
    response = handler(api_event("GET", f"/v1/scans/{record.scan_id}", token=token), LocalContext("api"))
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {
        "scan_id": record.scan_id, "status": "complete",
        "created_at": record.created_at, "expires_at": record.expires_at,
        "label": "no_cancer_detected", "probability": 0.2, "confidence": 0.8, "threshold": 0.7,
        "model_version": "v1", "reason": None, "series": None, "technical": {"format": "dicom"},
        "heatmap": {"media_type": "image/png", "data": base64.b64encode(b"heat-png").decode()},
        "slice_image": {"media_type": "image/png", "data": base64.b64encode(b"slice-png").decode()},
    }


def test_a_pending_scan_has_no_result_and_no_images_yet():
    record, _ = scans.new_scan(scans.UploadRequest("a.png", "image/png", 10), now=1000, ttl_seconds=100)
    view = scans.public_view(record)
    assert view == {"scan_id": record.scan_id, "status": "pending", "created_at": 1000, "expires_at": 1100,
                    **{name: None for name in scans.RESULT_FIELDS}, "heatmap": None, "slice_image": None}


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("case", ["unknown id", "wrong token", "no token"])
def test_unknown_scan_wrong_and_missing_token_get_the_same_404(api, method, case):
    handler, table = api
    record, token = stored_scan(table)
    scan_id = "00000000-0000-4000-8000-000000000000" if case == "unknown id" else record.scan_id
    token = {"unknown id": token, "wrong token": token + "x", "no token": None}[case]
    response = handler(api_event(method, f"/v1/scans/{scan_id}", token=token), LocalContext("api"))
    assert response["statusCode"] == 404
    assert json.loads(response["body"]) == {"error": {"code": "not_found", "message": scans.REQUEST_ERROR_CODES["not_found"]}}
    assert table.get(record.scan_id) is not None


def test_a_wrong_method_names_the_allowed_ones_in_the_allow_header(api):
    handler, _ = api
    response = handler(api_event("PUT", "/v1/scans"), LocalContext("api"))
    assert response["statusCode"] == 405 and response["headers"]["Allow"] == "POST"
    assert json.loads(response["body"]) == {"error": {"code": "method_not_allowed", "message": "use POST"}}


def test_a_hospital_route_without_claims_answers_401_with_a_bearer_challenge(api_for_hospitals):
    handler, _ = api_for_hospitals
    response = handler(api_event("GET", "/v1/scans/00000000-0000-4000-8000-000000000000"), LocalContext("api"))
    assert response["statusCode"] == 401 and response["headers"]["WWW-Authenticate"] == "Bearer"


# --- the published OpenAPI document ---------------------------------------------------------------


def openapi_document(handler, stage="$default"):
    path = "/v1/openapi.json" if stage == "$default" else f"/{stage}/v1/openapi.json"
    event = api_event("GET", path)
    event["requestContext"]["stage"] = stage
    response = handler(event, LocalContext("api"))
    assert response["statusCode"] == 200
    return json.loads(response["body"])


def parameter_names(operation: dict) -> list[str] | None:
    return None if "parameters" not in operation else [p["name"] for p in operation["parameters"]]


def operations(document):
    return [op for path in document["paths"].values() for op in path.values()]


def assert_no_422_and_no_validation_schemas(document):
    assert operations(document) and all("422" not in op["responses"] for op in operations(document))
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "ValidationError" not in document["components"]["schemas"]
    assert "ScanView" in document["components"]["schemas"]  # the rest stays


@pytest.mark.parametrize("flow, token", [("api", ["x-scan-token"]), ("api_for_hospitals", [])], ids=["public", "hospitals"])
def test_the_openapi_document_names_the_token_header_only_in_the_public_flow_and_drops_powertools_422(request, flow, token):
    handler, _ = request.getfixturevalue(flow)
    document = openapi_document(handler)
    assert document["servers"] == [{"url": "/"}]
    assert_no_422_and_no_validation_schemas(document)
    scan = document["paths"]["/v1/scans/{scan_id}"]
    assert parameter_names(scan["get"]) == ["scan_id", "format", *token]
    assert parameter_names(scan["delete"]) == ["scan_id", *token]
    # no parameters: the key is gone, not null
    assert parameter_names(document["paths"]["/v1/scans"]["post"]) is None
    assert parameter_names(document["paths"]["/v1/health"]["get"]) is None


def test_openapi_document_served_under_a_named_stage_lists_that_stage_as_its_server(api):
    handler, _ = api
    assert openapi_document(handler, stage="prod")["servers"] == [{"url": "/prod"}]


# --- the scan domain --------------------------------------------------------------------------------


def test_a_refused_upload_request_carries_its_message():
    with pytest.raises(scans.InvalidRequest) as caught:
        scans.validate_upload_request(scans.UploadRequest("a.png", "image/png", 1001), 1000)
    assert caught.value.code == "too_large"
    assert caught.value.message == str(caught.value) == "size must be at most 1000 bytes"


# --- result PNGs ----------------------------------------------------------------------------------


def test_grey_png_clips_to_0_1_and_scales_to_0_255():
    # out-of-range values saturate at 0 and 255; they must not wrap round in uint8
    values = np.array([[-0.5, 0.0, 0.25, 0.5], [0.75, 1.0, 1.5, 3.0]], np.float32)
    assert decoded(grey_png(values)).tolist() == [[0, 0, 64, 128], [191, 255, 255, 255]]


def scored(fmt, image=SLICE):
    return ScanResult("complete", 0.7, "v", label="no_cancer_detected", probability=0.2, confidence=0.8,
                      heatmap=HEAT, image=image, technical={"format": fmt})


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_a_browser_shown_upload_gets_only_the_heatmap(fmt):
    pngs = result_pngs(scored(fmt))
    assert set(pngs) == {"heatmap_png"}
    assert decoded(pngs["heatmap_png"]).tolist() == [[0, 64], [128, 255]]


@pytest.mark.parametrize("fmt", ["dicom", "nifti"])
def test_dicom_and_nifti_also_get_the_slice_the_heatmap_belongs_to(fmt):
    pngs = result_pngs(scored(fmt))
    assert set(pngs) == {"heatmap_png", "slice_png"}
    assert decoded(pngs["slice_png"]).tolist() == [[255, 0], [0, 128]]


def test_no_slice_png_without_an_image():
    assert set(result_pngs(scored("dicom", image=None))) == {"heatmap_png"}


# --- process_upload: outcomes and records -----------------------------------------------------------


class RecordingStore(InMemoryScanStore):
    def __init__(self):
        super().__init__()
        self.claims, self.finishes = [], []

    def claim(self, scan_id, now, lease_seconds):
        self.claims.append(scan_id)
        return super().claim(scan_id, now, lease_seconds)

    def finish(self, scan_id, status, result, pngs, now):
        self.finishes.append((scan_id, status, now))
        return super().finish(scan_id, status, result, pngs, now)


def recording_world():
    table = RecordingStore()
    record, _ = scans.new_scan(scans.UploadRequest("a.dcm", "application/dicom", 10), now=0, ttl_seconds=100)
    table.create(record)
    bucket = InMemoryUploadStore()
    key = scans.upload_key(record.scan_id)
    bucket.objects[key] = b"DICM"
    return table, bucket, key, record.scan_id


def test_a_completed_scan_records_the_result_fields_without_status_at_the_time_given():
    table, bucket, key, scan_id = recording_world()
    outcome = process_upload(key, bucket, table, CountingScorer(scored("dicom")), max_bytes=MAX, now=42)
    assert outcome == Outcome(scan_id, "complete", None)
    assert table.finishes == [(scan_id, "complete", 42)]
    stored = table.get(scan_id)
    assert stored.result == {"label": "no_cancer_detected", "probability": 0.2, "confidence": 0.8, "threshold": 0.7,
                             "model_version": "v", "reason": None, "series": None, "technical": {"format": "dicom"}}
    assert decoded(stored.slice_png).tolist() == [[255, 0], [0, 128]]


@pytest.mark.parametrize("code", ["upload_missing", "processing_error"])
def test_failed_scans_record_the_reason_code_and_its_message(code):
    table, bucket, key, scan_id = new_world()
    if code == "upload_missing":
        del bucket.objects[key]
        process_upload(key, bucket, table, CountingScorer(), max_bytes=MAX, now=1)
    else:
        with pytest.raises(ProcessingError):
            process_upload(key, bucket, table, CountingScorer(error=RuntimeError()), max_bytes=MAX, now=1)
    assert table.get(scan_id).result == {"reason": {"code": code, "message": FAILURE_CODES[code]}}


def test_an_arrived_object_over_the_limit_is_rejected_with_the_limit_in_the_message():
    table, _, key, scan_id = new_world()
    bucket = DeclaredLengthTrustingStore()
    bucket.objects[key] = b"x" * (MAX + 1)
    process_upload(key, bucket, table, CountingScorer(), max_bytes=MAX, now=1)
    assert table.get(scan_id).result == {"reason": {"code": "too_large", "message": f"The file is larger than {MAX} bytes."}}


def test_a_duplicate_while_claimed_is_ignored_under_its_scan_id():
    table, bucket, key, scan_id = new_world()
    table.claim(scan_id, 0, 60)
    assert process_upload(key, bucket, table, CountingScorer(), max_bytes=MAX, now=1) == Outcome(scan_id, "ignored")


def test_a_duplicate_after_the_final_result_is_ignored_under_its_scan_id():
    table, bucket, key, scan_id = new_world()
    process_upload(key, bucket, table, CountingScorer(), max_bytes=MAX, now=1)
    bucket.objects[key] = b"again"
    assert process_upload(key, bucket, table, CountingScorer(), max_bytes=MAX, now=2) == Outcome(scan_id, "ignored")
    assert key not in bucket.objects


def test_a_key_that_is_not_ours_is_deleted_without_a_claim():
    table, bucket = RecordingStore(), InMemoryUploadStore()
    bucket.objects["uploads/not-a-scan"] = b"x"
    assert process_upload("uploads/not-a-scan", bucket, table, CountingScorer(), max_bytes=MAX, now=1) == Outcome(None, "ignored")
    assert table.claims == [] and bucket.objects == {}


def test_without_a_lease_given_a_claim_is_taken_over_after_60_seconds():
    table, bucket, key, scan_id = new_world()
    table.claim(scan_id, 100, 60)
    assert process_upload(key, bucket, table, CountingScorer(), max_bytes=MAX, now=160).status == "ignored"
    assert process_upload(key, bucket, table, CountingScorer(), max_bytes=MAX, now=161).status == "complete"


def test_take_upload_of_a_vanished_object_names_its_key_and_still_deletes_it():
    bucket = InMemoryUploadStore()
    with pytest.raises(UploadMissing) as caught:
        take_upload("uploads/gone", bucket, MAX)
    assert caught.value.args == ("uploads/gone",)
    assert bucket.deleted == ["uploads/gone"]
