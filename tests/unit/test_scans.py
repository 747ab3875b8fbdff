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
