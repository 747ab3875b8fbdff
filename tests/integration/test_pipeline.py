"""The API and inference handlers against moto: create, upload, infer, read, delete."""

import base64
import io
import json
import time
from datetime import datetime
from urllib.parse import quote_plus

import numpy as np
import pytest
from PIL import Image

from pancscan.errors import ScanRejected
from pancscan.service.aws import S3UploadStore
from tests.conftest import png_bytes
from tests.integration.conftest import BUCKET, TABLE


def create(api, data: bytes, content_type="image/jpeg", filename="slice.jpg"):
    status, body = api("POST", "/v1/scans", {"filename": filename, "content_type": content_type, "size": len(data)})
    assert status == 201, body
    return body


def upload(aws, created, data: bytes):
    # What the browser's multipart POST leaves behind: the object under the server-chosen key.
    fields = created["upload"]["fields"]
    aws["s3"].put_object(Bucket=BUCKET, Key=fields["key"], Body=data, ContentType=fields["Content-Type"])
    return fields["key"]


def item(aws, scan_id):
    return aws["dynamodb"].get_item(TableName=TABLE, Key={"scan_id": {"S": scan_id}}).get("Item")


def test_a_slice_goes_from_upload_to_a_complete_result_and_leaves_nothing_in_the_bucket(aws, api, inference, ct_slice):
    created = create(api, ct_slice)
    key = upload(aws, created, ct_slice)
    assert key == f"uploads/{created['scan_id']}"

    inference(quote_plus(key))  # S3 events carry URL-encoded keys

    status, result = api("GET", f"/v1/scans/{created['scan_id']}", token=created["result_token"])
    assert status == 200 and result["status"] == "complete"
    assert result["label"] in ("cancer_detected", "no_cancer_detected")
    assert 0 <= result["probability"] <= 1 and 0 <= result["confidence"] <= 1
    assert Image.open(io.BytesIO(base64.b64decode(result["heatmap"]["data"]))).size == (64, 64)
    assert aws["s3"].list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0
    stored = item(aws, created["scan_id"])
    assert int(stored["expires_at"]["N"]) - int(stored["created_at"]["N"]) == 7 * 86400
    assert created["result_token"] not in str(stored)


def test_duplicate_event_writes_one_result(aws, api, inference, ct_slice):
    created = create(api, ct_slice)
    key = upload(aws, created, ct_slice)
    first = inference(key)
    second = inference(key)
    assert first == {"processed": ["complete"]} and second == {"processed": ["ignored"]}
    assert item(aws, created["scan_id"])["status"]["S"] == "complete"


def test_a_file_that_is_not_ct_is_rejected_with_its_reason_and_deleted(aws, api, inference):
    rng = np.random.default_rng(0)
    photo = png_bytes(rng.integers(0, 256, (300, 400, 3)))  # colour noise: no CT looks like it
    created = create(api, photo, "image/png", "holiday.png")
    upload(aws, created, photo)
    inference(f"uploads/{created['scan_id']}")
    _, result = api("GET", f"/v1/scans/{created['scan_id']}", token=created["result_token"])
    assert result["status"] == "rejected" and result["label"] is None
    assert result["reason"]["code"] == "not_abdominal_ct"
    assert aws["s3"].list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0


def test_a_file_that_is_not_an_image_is_rejected_as_unreadable(aws, api, inference):
    created = create(api, b"%PDF-1.7 not an image", "image/png", "report.png")
    upload(aws, created, b"%PDF-1.7 not an image")
    inference(f"uploads/{created['scan_id']}")
    _, result = api("GET", f"/v1/scans/{created['scan_id']}", token=created["result_token"])
    assert result["reason"]["code"] == "unreadable_file"


def test_unknown_id_wrong_token_and_missing_token_get_the_same_404(api, ct_slice):
    created = create(api, ct_slice)
    path = f"/v1/scans/{created['scan_id']}"
    answers = [api("GET", path, token="wrong"), api("GET", path), api("GET", "/v1/scans/00000000-0000-4000-8000-000000000000", token=created["result_token"]),
               api("GET", "/v1/scans/not-a-uuid", token=created["result_token"]), api("DELETE", path, token="wrong")]
    assert all(answer == answers[0] for answer in answers) and answers[0][0] == 404


def test_delete_removes_the_result(aws, api, ct_slice):
    created = create(api, ct_slice)
    path = f"/v1/scans/{created['scan_id']}"
    assert api("DELETE", path, token=created["result_token"]) == (204, None)
    assert api("GET", path, token=created["result_token"])[0] == 404
    assert item(aws, created["scan_id"]) is None


@pytest.mark.parametrize(
    "body,code",
    [
        ({"filename": "a.gif", "content_type": "image/gif", "size": 10}, "unsupported_type"),
        ({"filename": "a.png", "content_type": "image/png", "size": 3_000_000}, "too_large"),
        ({"filename": "a.png", "content_type": "image/png"}, "invalid_request"),
        ({"filename": "a.png", "content_type": "image/png", "size": -1}, "invalid_request"),
    ],
)
def test_bad_create_requests_get_400_with_a_code(api, body, code):
    status, answer = api("POST", "/v1/scans", body)
    assert status == 400 and answer["error"]["code"] == code


def test_presigned_post_policy_pins_key_type_size_and_expiry(api):
    before = time.time()
    status, created = api("POST", "/v1/scans", {"filename": "a.png", "content_type": "image/png", "size": 100})
    fields = created["upload"]["fields"]
    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    assert {"key": f"uploads/{created['scan_id']}"} in conditions
    assert {"Content-Type": "image/png"} in conditions
    assert ["content-length-range", 1, 2000000] in conditions
    # S3 enforces the policy's own expiration (5 minutes, as docs/hospital-integration.md says); the page is told the same moment
    expiration = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00")).timestamp()
    assert before + 300 - 2 <= expiration <= time.time() + 300 + 1
    assert abs(created["upload"]["expires_at"] - expiration) <= 1


@pytest.mark.parametrize("size", [99, 100, 101])
def test_the_s3_adapter_refuses_an_object_over_the_limit_unread(aws, size):
    aws["s3"].put_object(Bucket=BUCKET, Key="uploads/x", Body=b"x" * size)
    store = S3UploadStore(BUCKET)
    if size > 100:
        with pytest.raises(ScanRejected) as refused:
            store.read("uploads/x", max_bytes=100)
        assert (refused.value.code, refused.value.message) == ("too_large", "The file is larger than 100 bytes.")
    else:
        assert store.read("uploads/x", max_bytes=100) == b"x" * size
    assert store.read("uploads/missing", max_bytes=100) is None


def test_health_and_openapi(api):
    assert api("GET", "/v1/health")[1]["status"] == "ok"
    status, document = api("GET", "/v1/openapi.json")
    assert status == 200 and document["openapi"].startswith("3.1")
    assert {"/v1/scans", "/v1/scans/{scan_id}", "/v1/health"} <= set(document["paths"])


def test_dynamodb_claims_hold_for_their_lease_and_final_scans_stay_final(aws):
    from pancscan.service import scans
    from pancscan.service.aws import DynamoScanStore

    store = DynamoScanStore(TABLE)
    record, _ = scans.new_scan(scans.UploadRequest("a.png", "image/png", 10), now=1000, ttl_seconds=10**6)
    store.create(record)
    assert store.claim(record.scan_id, 1000, 60) == scans.CLAIMED
    assert store.claim(record.scan_id, 1030, 60) == scans.BUSY
    assert store.claim(record.scan_id, 1061, 60) == scans.CLAIMED  # the first claimer died
    store.finish(record.scan_id, "complete", {"label": "no_cancer_detected"}, {}, 1062)
    assert store.claim(record.scan_id, 5000, 60) == scans.GONE
    assert store.claim("00000000-0000-4000-8000-000000000000", 5000, 60) == scans.GONE
    assert store.get(record.scan_id).status == "complete"


def test_an_expired_result_is_not_served_even_before_dynamodb_removes_it(aws, api, ct_slice):
    created = create(api, ct_slice)
    aws["dynamodb"].update_item(TableName=TABLE, Key={"scan_id": {"S": created["scan_id"]}},
                                UpdateExpression="SET expires_at = :past", ExpressionAttributeValues={":past": {"N": "1"}})
    assert api("GET", f"/v1/scans/{created['scan_id']}", token=created["result_token"])[0] == 404
    assert api("DELETE", f"/v1/scans/{created['scan_id']}", token=created["result_token"])[0] == 404
