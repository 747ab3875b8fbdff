"""Both Lambda handlers with in-memory stores: events in, responses and records out. No network."""

import json
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from pancscan.service import scans
from pancscan_local.lambda_runtime import LocalContext, load_handler
from tests.fakes import InMemoryScanStore, InMemorySheetStore, InMemoryUploadStore

EVENTS = Path(__file__).resolve().parents[2] / "events"


@pytest.fixture
def env(monkeypatch):
    for name, value in {"BUCKET_NAME": "b", "TABLE_NAME": "t", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}.items():
        monkeypatch.setenv(name, value)


def cold_handler_with_fake_stores(function: str, monkeypatch):
    """A freshly imported handler whose table and bucket adapters are in-memory fakes."""
    handler = load_handler(function, cold=True)
    module = sys.modules[handler.__module__]
    table, bucket = InMemoryScanStore(), InMemoryUploadStore()
    monkeypatch.setattr(module, "store", table)
    monkeypatch.setattr(module, "uploads", bucket)
    monkeypatch.setattr(module, "sheets", InMemorySheetStore())
    return handler, table, bucket


@pytest.fixture
def api(env, monkeypatch):
    handler, table, _ = cold_handler_with_fake_stores("api", monkeypatch)
    return handler, table


def api_event(method: str, path: str, body=None, token=None) -> dict:
    event = json.loads((EVENTS / "api_create_scan.json").read_text())
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["body"] = body
    if token:
        event["headers"]["x-scan-token"] = token
    return event


def test_api_creates_a_pending_scan_and_returns_its_upload_form(api):
    handler, table = api
    response = handler(api_event("POST", "/v1/scans", json.dumps({"filename": "s.png", "content_type": "image/png", "size": 9})), LocalContext("api"))
    assert response["statusCode"] == 201
    body = json.loads(response["body"])
    assert body["upload"]["fields"]["key"] == f"uploads/{body['scan_id']}"
    assert table.get(body["scan_id"]).status == "pending"


@pytest.mark.parametrize("body", ["not json", "[]", json.dumps({"filename": "s.png"}), None])
def test_api_answers_malformed_bodies_with_400_invalid_request(api, body):
    handler, _ = api
    response = handler(api_event("POST", "/v1/scans", body), LocalContext("api"))
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["error"]["code"] == "invalid_request"


def test_api_unknown_route_is_404(api):
    handler, _ = api
    assert handler(api_event("GET", "/v1/nothing"), LocalContext("api"))["statusCode"] == 404


def test_inference_handler_processes_each_record_with_its_decoded_key(env, monkeypatch):
    handler, table, bucket = cold_handler_with_fake_stores("inference", monkeypatch)
    record, _ = scans.new_scan(scans.UploadRequest("a.png", "image/png", 10), now=0, ttl_seconds=10**10)
    table.create(record)
    bucket.objects[scans.upload_key(record.scan_id)] = b"not an image"
    event = json.loads((EVENTS / "s3_object_created.json").read_text())
    event["Records"][0]["s3"]["object"]["key"] = "uploads%2F" + record.scan_id  # URL-encoded, as S3 sends it
    assert handler(event, LocalContext("inference")) == {"processed": ["rejected"]}
    assert table.get(record.scan_id).result["reason"]["code"] == "unreadable_file"
    assert bucket.objects == {}


def test_the_model_is_loaded_once_per_container_not_per_invocation(env, monkeypatch, nih_dir):
    import pancscan.detection.model

    loads = []
    real_init = pancscan.detection.model.SliceModel.__init__
    monkeypatch.setattr(pancscan.detection.model.SliceModel, "__init__", lambda self, *a: (loads.append(1), real_init(self, *a))[1])
    pancscan.detection.model.load_model.cache_clear()
    handler, table, bucket = cold_handler_with_fake_stores("inference", monkeypatch)  # a cold start
    assert len(loads) == 1  # at import, before any request
    ct_slice = sorted((nih_dir / "images").glob("*.jpg"))[0].read_bytes()
    for _ in range(3):
        record, _ = scans.new_scan(scans.UploadRequest("a.jpg", "image/jpeg", len(ct_slice)), now=0, ttl_seconds=10**10)
        table.create(record)
        bucket.objects[scans.upload_key(record.scan_id)] = ct_slice
        event = json.loads((EVENTS / "s3_object_created.json").read_text())
        event["Records"][0]["s3"]["object"]["key"] = scans.upload_key(record.scan_id)
        assert handler(event, LocalContext("inference")) == {"processed": ["complete"]}  # the model scored it
    assert len(loads) == 1


def test_the_client_never_chooses_the_key_and_its_file_name_is_never_kept(api):
    handler, table = api

    @hypothesis_settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(st.text(min_size=1, max_size=200).filter(lambda s: "\x00" not in s))
    def check(name):
        body = json.dumps({"filename": name + ".png", "content_type": "image/png", "size": 10})
        response = handler(api_event("POST", "/v1/scans", body), LocalContext("api"))
        assert response["statusCode"] == 201
        created = json.loads(response["body"])
        # the key is the prefix and a server-made UUID: nothing of the client's is in it
        assert created["upload"]["fields"]["key"] == f"uploads/{created['scan_id']}"
        assert scans.UUID_PATTERN.match(created["scan_id"])
        assert (name + ".png") not in repr(table.get(created["scan_id"]))

    check()


def test_tokens_are_compared_in_constant_time(monkeypatch):
    import hmac

    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: (calls.append(1), real(a, b))[1])
    record, token = scans.new_scan(scans.UploadRequest("a.png", "image/png", 10), now=0, ttl_seconds=100)
    assert scans.token_matches(record, token) and not scans.token_matches(record, "x")
    assert len(calls) == 2


@pytest.fixture
def api_for_hospitals(env, monkeypatch):
    monkeypatch.setenv("AUTH_MODE", "jwt")
    monkeypatch.setenv("TOKEN_URL", "https://pool.auth.eu-west-1.amazoncognito.com/oauth2/token")
    handler, table, _ = cold_handler_with_fake_stores("api", monkeypatch)
    return handler, table


def as_client(event: dict, client_id: str) -> dict:
    # what API Gateway's JWT authorizer adds once the token has passed
    event["requestContext"]["authorizer"] = {"jwt": {"claims": {"client_id": client_id, "scope": "pancscan/read"}, "scopes": ["pancscan/read"]}}
    return event


def test_with_hospital_auth_a_scan_belongs_to_the_client_that_created_it(api_for_hospitals):
    handler, table = api_for_hospitals
    body = json.dumps({"filename": "s.png", "content_type": "image/png", "size": 9})
    created = handler(as_client(api_event("POST", "/v1/scans", body), "hospital-a"), LocalContext("api"))
    assert created["statusCode"] == 201
    scan_id, token = json.loads(created["body"])["scan_id"], json.loads(created["body"])["result_token"]
    assert table.get(scan_id).owner == "hospital-a"
    read = lambda event: handler(event, LocalContext("api"))["statusCode"]  # noqa: E731
    assert read(as_client(api_event("GET", f"/v1/scans/{scan_id}"), "hospital-a")) == 200
    assert read(as_client(api_event("GET", f"/v1/scans/{scan_id}", token=token), "hospital-b")) == 404  # its token does not help
    assert read(as_client(api_event("DELETE", f"/v1/scans/{scan_id}"), "hospital-b")) == 404
    assert read(as_client(api_event("DELETE", f"/v1/scans/{scan_id}"), "hospital-a")) == 204


def test_with_hospital_auth_a_call_without_the_authorizers_claims_is_refused(api_for_hospitals):
    handler, table = api_for_hospitals
    body = json.dumps({"filename": "s.png", "content_type": "image/png", "size": 9})
    response = handler(api_event("POST", "/v1/scans", body), LocalContext("api"))
    assert response["statusCode"] == 401 and json.loads(response["body"])["error"]["code"] == "unauthorized"
    assert table.records == {}
    assert handler(api_event("GET", "/v1/scans/00000000-0000-4000-8000-000000000000", token="t"), LocalContext("api"))["statusCode"] == 401
    assert handler(api_event("GET", "/v1/health"), LocalContext("api"))["statusCode"] == 200


def test_with_hospital_auth_the_openapi_document_names_the_client_credentials_scheme(api_for_hospitals):
    hospitals, _ = api_for_hospitals
    document = json.loads(hospitals(api_event("GET", "/v1/openapi.json"), LocalContext("api"))["body"])
    flow = document["components"]["securitySchemes"]["hospitalClient"]["flows"]["clientCredentials"]
    assert flow["tokenUrl"].endswith("/oauth2/token") and set(flow["scopes"]) == {"pancscan/submit", "pancscan/read"}
    assert set(document["paths"]["/v1/scans/{scan_id}"]["get"]["responses"]) >= {"401", "403", "404"}


def test_an_unknown_auth_mode_fails_at_cold_start_not_on_a_request():
    from pancscan.service.settings import Settings

    with pytest.raises(RuntimeError, match="AUTH_MODE"):
        Settings.from_env({"BUCKET_NAME": "b", "TABLE_NAME": "t", "AUTH_MODE": "cognito"})


def test_an_unknown_format_is_named_in_the_error_not_blamed_on_a_body(api):
    handler, _ = api
    event = api_event("GET", "/v1/scans/00000000-0000-4000-8000-000000000000", token="t")
    event["queryStringParameters"], event["rawQueryString"] = {"format": "xml"}, "format=xml"
    response = handler(event, LocalContext("api"))
    body = json.loads(response["body"])["error"]
    assert response["statusCode"] == 400 and body["code"] == "invalid_request" and "format" in body["message"] and "body" not in body["message"]
