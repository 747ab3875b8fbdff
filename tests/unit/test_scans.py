"""The scan domain: upload requests, tokens, keys, what a reader may see."""

import base64
import uuid

import pytest

from pancscan.service import scans
from pancscan.service.scans import InvalidRequest, UploadRequest

MAX = 1000


@pytest.mark.parametrize("name,ctype", [("slice.png", "image/png"), ("a.JPG", "image/jpeg"), ("b.jpeg", "image/jpeg")])
def test_accepted_upload_requests(name, ctype):
    scans.validate_upload_request(UploadRequest(name, ctype, MAX), MAX)


@pytest.mark.parametrize(
    "request_,code",
    [
        (UploadRequest("a.gif", "image/gif", 10), "unsupported_type"),
        (UploadRequest("a.png", "image/png", MAX + 1), "too_large"),
    ],
)
def test_refused_upload_requests_say_why(request_, code):
    with pytest.raises(InvalidRequest) as caught:
        scans.validate_upload_request(request_, MAX)
    assert caught.value.code == code


def test_new_scan_stores_only_the_token_hash_and_expires():
    record, token = scans.new_scan(UploadRequest("Doe_John.png", "image/png", 10), now=1000, ttl_seconds=7 * 86400)
    assert uuid.UUID(record.scan_id).version == 4
    assert record.status == scans.PENDING and record.expires_at == 1000 + 7 * 86400
    assert token not in repr(record) and record.token_hash == scans.hash_token(token)
    assert "Doe_John" not in repr(record)  # the file name is never kept
    assert len(token) >= 40


def test_tokens_and_expiry_decide_who_reads():
    record, token = scans.new_scan(UploadRequest("a.png", "image/png", 10), now=1000, ttl_seconds=100)
    assert scans.readable(record, token, now=1050)
    assert not scans.readable(record, token + "x", now=1050)
    assert not scans.readable(record, None, now=1050)
    assert not scans.readable(None, token, now=1050)
    assert not scans.readable(record, token, now=1100)  # expired, even if DynamoDB has not removed it yet


def test_a_hospital_clients_scan_is_read_by_that_client_alone_token_or_not():
    record, token = scans.new_scan(UploadRequest("a.png", "image/png", 10), now=1000, ttl_seconds=100, owner="hospital-a")
    assert scans.readable(record, None, now=1050, client="hospital-a")
    assert not scans.readable(record, token, now=1050, client="hospital-b")
    assert not scans.readable(record, token, now=1050)
    assert not scans.readable(record, None, now=1100, client="hospital-a")  # expiry still holds


def test_keys_round_trip_and_foreign_keys_are_not_ours():
    scan_id = str(uuid.uuid4())
    assert scans.scan_id_from_key(scans.upload_key(scan_id)) == scan_id
    for key in ("results/" + scan_id, "uploads/../" + scan_id, "uploads/" + scan_id + "/x", "uploads/abc"):
        assert scans.scan_id_from_key(key) is None


def test_public_view_has_the_result_fields_and_no_secret():
    record, _ = scans.new_scan(UploadRequest("a.png", "image/png", 10), now=1000, ttl_seconds=100)
    record.status = scans.COMPLETE
    record.result = {"label": "no_cancer_detected", "probability": 0.2, "confidence": 0.8, "threshold": 0.7,
                     "model_version": "v", "reason": None}
    record.heatmap_png = b"\x89PNG..."
    view = scans.public_view(record)
    assert {"scan_id", "status", *scans.RESULT_FIELDS, "heatmap"} <= set(view)
    assert "token_hash" not in view and record.token_hash not in str(view)
    assert base64.b64decode(view["heatmap"]["data"]) == record.heatmap_png


# --- the scan domain: upload requests and new scans --------------------------------------------------

ALL_TYPES = "image/png, image/jpeg, application/dicom, application/zip, application/gzip, application/octet-stream"


def test_an_unsupported_type_is_refused_with_every_accepted_type_listed():
    with pytest.raises(scans.InvalidRequest) as caught:
        scans.validate_upload_request(scans.UploadRequest("a.gif", "image/gif", 10), MAX)
    assert caught.value.code == "unsupported_type"
    assert caught.value.message == str(caught.value) == f"content_type must be one of {ALL_TYPES}"


@pytest.mark.parametrize("content_type", scans.CONTENT_TYPES)
def test_each_accepted_type_passes_at_one_byte_and_at_the_maximum(content_type):
    for size in (1, MAX):
        scans.validate_upload_request(scans.UploadRequest("x", content_type, size), MAX)


def test_the_domain_refuses_one_byte_over_the_maximum_with_the_limit_in_the_message():
    with pytest.raises(scans.InvalidRequest) as caught:
        scans.validate_upload_request(scans.UploadRequest("a.png", "image/png", MAX + 1), MAX)
    assert (caught.value.code, caught.value.message, str(caught.value)) == ("too_large", "size must be at most 1000 bytes",
                                                                           "size must be at most 1000 bytes")


@pytest.mark.parametrize("content_type", ["application/dicom", "application/zip"])
def test_a_new_scan_keeps_the_declared_content_type_and_size(content_type):
    record, _ = scans.new_scan(scans.UploadRequest("a", content_type, 77), now=5, ttl_seconds=10)
    assert (record.content_type, record.size, record.created_at, record.expires_at) == (content_type, 77, 5, 15)


def test_the_result_token_carries_256_random_bits_url_safe():
    _, token = scans.new_scan(scans.UploadRequest("a", "image/png", 1), now=0, ttl_seconds=10)
    assert len(token) == 43 and "=" not in token
    assert len(base64.urlsafe_b64decode(token + "=")) == 32


# --- the scan domain --------------------------------------------------------------------------------


def test_a_refused_upload_request_carries_its_message():
    with pytest.raises(scans.InvalidRequest) as caught:
        scans.validate_upload_request(scans.UploadRequest("a.png", "image/png", 1001), 1000)
    assert caught.value.code == "too_large"
    assert caught.value.message == str(caught.value) == "size must be at most 1000 bytes"
