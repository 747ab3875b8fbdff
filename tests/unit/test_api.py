"""The API handler (functions/api): its exact answers, the OpenAPI document it publishes, and the size
field's validation, with in-memory stores."""

import base64
import json
import sys
import time

import pytest
from pydantic import ValidationError

from pancscan.service import scans
from pancscan_local.lambda_runtime import LocalContext
from tests.unit.test_handlers import (  # noqa: F401 (fixtures)
    api,
    api_event,
    api_for_hospitals,
    as_client,
    cold_handler_with_fake_stores,
    env,
)


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


# --- the OpenAPI document's error responses ---------------------------------------------------------

ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
GATEWAY_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/GatewayError"}}}
BEARER_CHALLENGE = {"www-authenticate": {"description": 'Bearer scope="..." error="..." error_description="why"',
                                         "schema": {"type": "string"}}}
INVALID = {"description": "invalid request", "content": ERROR_BODY}
NOT_READY = {"description": "no final result yet", "content": ERROR_BODY}
# API Gateway's own refusals, documented only when the JWT authorizer guards the routes
UNAUTHORIZED = {"description": "no valid access token", "headers": BEARER_CHALLENGE, "content": GATEWAY_ERROR}
FORBIDDEN = {"description": "the token lacks this route's scope", "headers": BEARER_CHALLENGE, "content": GATEWAY_ERROR}


def error_responses(document: dict, path: str, method: str) -> dict:
    """The operation's non-2xx responses."""
    return {code: answer for code, answer in document["paths"][path][method]["responses"].items() if not code.startswith("2")}


def test_public_document_lists_each_operations_error_responses_exactly(api):
    handler, _ = api
    document = openapi_document(handler)
    not_found = {"description": "unknown scan, or wrong or missing token", "content": ERROR_BODY}
    assert error_responses(document, "/v1/scans", "post") == {"400": INVALID}
    assert error_responses(document, "/v1/scans/{scan_id}", "get") == {"400": INVALID, "404": not_found, "409": NOT_READY}
    assert error_responses(document, "/v1/scans/{scan_id}", "delete") == {"400": INVALID, "404": not_found}
    assert error_responses(document, "/v1/health", "get") == {}


def test_hospital_document_adds_the_gateways_401_and_403_with_a_bearer_challenge(api_for_hospitals):
    handler, _ = api_for_hospitals
    document = openapi_document(handler)
    not_found = {"description": "unknown scan, or another client's", "content": ERROR_BODY}
    gateway = {"401": UNAUTHORIZED, "403": FORBIDDEN}
    assert error_responses(document, "/v1/scans", "post") == {"400": INVALID, **gateway}
    assert error_responses(document, "/v1/scans/{scan_id}", "get") == {"400": INVALID, "404": not_found, "409": NOT_READY,
                                                                       **gateway}
    assert error_responses(document, "/v1/scans/{scan_id}", "delete") == {"400": INVALID, "404": not_found, **gateway}
    assert error_responses(document, "/v1/health", "get") == {}


def test_the_referenced_error_schemas_are_published(api_for_hospitals):
    handler, _ = api_for_hospitals
    schemas = openapi_document(handler)["components"]["schemas"]
    assert schemas["ErrorBody"]["properties"]["error"] == {"$ref": "#/components/schemas/ErrorDetail"}
    assert schemas["GatewayError"]["properties"]["message"]["enum"] == ["Unauthorized", "Forbidden"]


# --- the size field and upload request limits, through the API --------------------------------------

MAX = 1000
INVALID_SIZE = {"error": {"code": "invalid_request",
                          "message": "invalid or missing: size (expected filename, content_type and size)"}}


@pytest.fixture
def small_api(env, monkeypatch):
    monkeypatch.setenv("MAX_UPLOAD_BYTES", str(MAX))
    handler, table, _ = cold_handler_with_fake_stores("api", monkeypatch)
    return handler, table


def create(handler, size, content_type="image/png"):
    body = json.dumps({"filename": "s.png", "content_type": content_type, "size": size})
    response = handler(api_event("POST", "/v1/scans", body), LocalContext("api"))
    return response["statusCode"], json.loads(response["body"])


@pytest.mark.parametrize("size", [1, MAX, 20.0], ids=["one-byte", "exactly-max", "whole-float"])
def test_sizes_from_one_byte_to_the_maximum_are_accepted_and_stored_as_integers(small_api, size):
    handler, table = small_api
    status, body = create(handler, size)
    assert status == 201
    record = table.get(body["scan_id"])
    assert record.size == size and type(record.size) is int
    assert record.content_type == "image/png"


@pytest.mark.parametrize("size", [0, -1, 20.5, "10", True, None], ids=["zero", "negative", "fraction", "string", "bool", "null"])
def test_sizes_that_are_not_a_positive_whole_number_are_invalid(small_api, size):
    handler, table = small_api
    assert create(handler, size) == (400, INVALID_SIZE)


def test_one_byte_over_the_maximum_is_too_large_with_the_limit_in_the_message(small_api):
    handler, _ = small_api
    assert create(handler, MAX + 1) == (400, {"error": {"code": "too_large", "message": "size must be at most 1000 bytes"}})


@pytest.mark.parametrize("size, message", [("10", "Value error, must be a number"), (True, "Value error, must be a number"),
                                           (20.5, "Value error, must be a whole number")])
def test_the_size_validator_says_why_a_value_is_refused(api, size, message):
    handler, _ = api
    module = sys.modules[handler.__module__]
    with pytest.raises(ValidationError) as caught:
        module.CreateScan.model_validate({"filename": "s.png", "content_type": "image/png", "size": size})
    assert [(e["loc"], e["msg"]) for e in caught.value.errors()] == [(("size",), message)]
