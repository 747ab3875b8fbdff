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


# --- refusals: each with its code and the message that says what to send ------------------------------


def answer(handler, method: str, path: str, body: str | None = None, content_type: str = "application/json",
           query: dict | None = None) -> tuple[int, dict]:
    event = api_event(method, path, body)
    event["headers"]["content-type"] = content_type
    if query:
        event["queryStringParameters"] = query
        event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    response = handler(event, LocalContext("api"))
    return response["statusCode"], json.loads(response["body"])


def refusal(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


EXPECTED = " (expected filename, content_type and size)"


@pytest.mark.parametrize("body, content_type, expected", [
    ('{"content_type": "image/png"}', "application/json", refusal("invalid_request", "invalid or missing: filename, size" + EXPECTED)),
    ("[]", "application/json", refusal("invalid_request", "the body must be a JSON object" + EXPECTED)),
    ('"a scan"', "application/json", refusal("invalid_request", "the body must be a JSON object" + EXPECTED)),
    ("{not json", "application/json", refusal("invalid_request", "the body must be a JSON object" + EXPECTED)),
    ('{"filename": "a.gif", "content_type": "image/gif", "size": 1}', "application/json",
     refusal("unsupported_type", "content_type must be one of " + ", ".join(scans.CONTENT_TYPES))),
    ("filename=a.png", "multipart/form-data", refusal("invalid_request", "send the body as JSON with the header Content-Type: application/json")),
    ("filename=a.png", "text/plain", refusal("invalid_request", "send the body as JSON with the header Content-Type: application/json")),
], ids=["fields-missing", "array", "string", "not-json", "unsupported-type", "form-without-boundary", "plain-text"])
def test_a_refused_creation_says_what_was_wrong(api, body, content_type, expected):
    handler, table = api
    assert answer(handler, "POST", "/v1/scans", body, content_type) == (400, expected)
    assert table.records == {}


def test_a_json_body_sent_under_another_content_type_is_told_to_say_json(api):
    handler, _ = api
    body = json.dumps({"filename": "a.png", "content_type": "image/png"})
    assert answer(handler, "POST", "/v1/scans", body, "application/x-www-form-urlencoded") == (
        400, refusal("invalid_request", "send the body as JSON with the header Content-Type: application/json" + EXPECTED))


def test_an_unknown_format_is_named_in_the_refusal(api):
    handler, table = api
    record, token = stored_scan(table)
    event = api_event("GET", f"/v1/scans/{record.scan_id}", token=token)
    event["queryStringParameters"], event["rawQueryString"] = {"format": "xml"}, "format=xml"
    response = handler(event, LocalContext("api"))
    assert (response["statusCode"], json.loads(response["body"])) == (400, refusal("invalid_request", "invalid: format (see /v1/openapi.json)"))


def test_a_refusal_that_names_no_field_says_the_request(api):
    handler, _ = api
    module = sys.modules[handler.__module__]
    response = module.validation_error([{"loc": ("query",), "type": "missing"}], "GET", None)
    assert (response.status_code, response.body) == (400, refusal("invalid_request", "invalid: the request (see /v1/openapi.json)"))
    two = module.validation_error([{"loc": ("query", "format")}, {"loc": ("header", "x-scan-token")}], "GET", None)
    assert two.body == refusal("invalid_request", "invalid: format, x-scan-token (see /v1/openapi.json)")


def test_an_unparsable_json_body_is_not_mistaken_for_a_content_type_problem(api):
    # Powertools raises ValueError on a body it cannot parse; under a JSON content type that is its own error
    handler, _ = api
    module = sys.modules[handler.__module__]
    problem = ValueError("cannot parse")
    with pytest.raises(ValueError) as raised:
        module.not_json(problem, "application/json")
    assert raised.value is problem
    response = module.not_json(problem, None)
    assert (response.status_code, response.body) == (400, refusal("invalid_request", "send the body as JSON with the header Content-Type: application/json"))


def test_a_path_outside_the_api_is_not_found_and_says_where_the_routes_are(api):
    handler, _ = api
    assert answer(handler, "GET", "/v2/scans") == (404, refusal("not_found", "No such route; see /v1/openapi.json."))


@pytest.mark.parametrize("method, path, allowed", [("GET", "/v1/scans", "POST"), ("POST", "/v1/scans/abc", "GET, DELETE"),
                                                   ("DELETE", "/v1/scans/abc/slices", "GET"), ("POST", "/v1/health", "GET"),
                                                   ("PUT", "/v1/openapi.json", "GET")])
def test_each_route_answers_a_wrong_method_with_its_allowed_ones(api, method, path, allowed):
    handler, _ = api
    response = handler(api_event(method, path), LocalContext("api"))
    assert (response["statusCode"], response["headers"]["Allow"]) == (405, allowed)
    assert json.loads(response["body"]) == refusal("method_not_allowed", f"use {allowed}")


class DynamoLikeStore:
    """What DynamoDB does with a key over 2,048 bytes: a ValidationException (a 500 if it got there)."""

    def __init__(self, store):
        self.store = store

    def get(self, scan_id: str):
        if len(scan_id.encode()) > 2048:
            raise RuntimeError("ValidationException: Size of hashkey has exceeded the maximum size limit of 2048 bytes")
        return self.store.get(scan_id)


@pytest.mark.parametrize("method, suffix", [("GET", ""), ("GET", "/slices"), ("DELETE", "")])
def test_a_path_id_that_is_no_scan_id_is_not_found_without_asking_the_store(api, monkeypatch, method, suffix):
    handler, table = api
    monkeypatch.setattr(sys.modules[handler.__module__], "store", DynamoLikeStore(table))
    assert answer(handler, method, f"/v1/scans/{'a' * 3000}{suffix}") == (
        404, refusal("not_found", scans.REQUEST_ERROR_CODES["not_found"]))


def test_a_creation_is_logged_with_the_scan_id_and_content_type_alone(api, caplog):
    handler, _ = api
    caplog.set_level("INFO")
    body = json.dumps({"filename": "Doe^Jane 1970-01-01.png", "content_type": "image/png", "size": 9})
    created = json.loads(handler(api_event("POST", "/v1/scans", body), LocalContext("api"))["body"])
    (entry,) = [entry for entry in caplog.records if entry.getMessage() == "scan created"]
    assert (entry.scan_id, entry.content_type) == (created["scan_id"], "image/png")
    assert all("Doe" not in str(vars(entry)) and created["result_token"] not in str(vars(entry)) for entry in caplog.records)


def test_a_deletion_is_logged_with_the_scan_id_alone(api, caplog):
    handler, table = api
    record, token = stored_scan(table)
    caplog.set_level("INFO")
    response = handler(api_event("DELETE", f"/v1/scans/{record.scan_id}", token=token), LocalContext("api"))
    assert response["statusCode"] == 204
    deleted = [entry for entry in caplog.records if entry.getMessage() == "scan deleted"]
    assert len(deleted) == 1 and deleted[0].scan_id == record.scan_id
    assert all(token not in str(vars(entry)) for entry in caplog.records)


def test_the_document_names_the_api_its_version_and_that_it_is_no_medical_device(api):
    from pancscan import __version__

    handler, _ = api
    info = openapi_document(handler)["info"]
    assert info == {"title": "PancScan API", "version": __version__, "description": "Research software, not a medical device."}


def test_results_are_never_cached_in_json_or_fhir_and_fhir_says_its_media_type(api):
    handler, table = api
    record, token = stored_scan(table)
    pending = handler(api_event("GET", f"/v1/scans/{record.scan_id}", token=token) | {"rawQueryString": "format=fhir",
                      "queryStringParameters": {"format": "fhir"}}, LocalContext("api"))
    assert (pending["statusCode"], json.loads(pending["body"])) == (409, refusal("not_ready", scans.REQUEST_ERROR_CODES["not_ready"]))
    record.status, record.result = scans.REJECTED, {"reason": {"code": "not_abdominal_ct", "message": "m"}}
    table.records[record.scan_id] = record
    for query, media_type in (({}, "application/json"), ({"format": "fhir"}, "application/fhir+json")):
        event = api_event("GET", f"/v1/scans/{record.scan_id}", token=token)
        if query:
            event["queryStringParameters"], event["rawQueryString"] = query, "format=fhir"
        response = handler(event, LocalContext("api"))
        assert response["statusCode"] == 200
        assert (response["headers"]["Content-Type"], response["headers"]["Cache-Control"]) == (media_type, "no-store")


def test_a_deletion_answers_204_with_an_empty_body(api):
    handler, table = api
    record, token = stored_scan(table)
    response = handler(api_event("DELETE", f"/v1/scans/{record.scan_id}", token=token), LocalContext("api"))
    assert (response["statusCode"], response["body"], response["headers"]["Content-Type"]) == (204, "", "application/json")
