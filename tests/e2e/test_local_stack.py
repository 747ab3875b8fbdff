"""End to end over HTTP, as a browser does it: create, multipart upload to S3, poll, read, delete."""

import time

import requests

from pancscan.predict import label_confidence

BUCKET, TABLE = "pancscan-local-uploads", "pancscan-local-scans"


def submit(stack, data: bytes, filename="slice.jpg", content_type="image/jpeg") -> dict:
    created = requests.post(f"{stack.url}/v1/scans", json={"filename": filename, "content_type": content_type, "size": len(data)})
    assert created.status_code == 201, created.text
    scan = created.json()
    form = scan["upload"]
    uploaded = requests.post(form["url"], data=form["fields"], files={"file": (filename, data, content_type)})
    assert uploaded.status_code in (200, 201, 204), uploaded.text
    return scan


def wait_for_result(stack, scan, timeout=30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = requests.get(f"{stack.url}/v1/scans/{scan['scan_id']}", headers={"X-Scan-Token": scan["result_token"]})
        assert answer.status_code == 200
        if answer.json()["status"] not in ("pending", "processing"):
            return answer.json()
        time.sleep(0.1)
    raise AssertionError("no result in time")


def test_a_shared_slice_uploaded_over_http_gets_a_result_and_leaves_no_object(local_stack, nih_dir):
    data = sorted((nih_dir / "images").glob("*.jpg"))[3].read_bytes()
    scan = submit(local_stack, data)
    result = wait_for_result(local_stack, scan)
    assert result["status"] == "complete"
    assert result["label"] in ("cancer_detected", "no_cancer_detected")
    # confidence in the label given: 50% at the threshold, 100% at a probability of 0 or 1
    expected = label_confidence(result["probability"], result["threshold"])
    assert abs(result["confidence"] - expected) <= 1e-4 and result["confidence"] >= 0.5
    assert result["heatmap"]["media_type"] == "image/png"
    assert local_stack.client("s3").list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0
    item = local_stack.client("dynamodb").get_item(TableName=TABLE, Key={"scan_id": {"S": scan["scan_id"]}})["Item"]
    assert int(item["expires_at"]["N"]) > time.time() + 6 * 86400
    assert scan["result_token"] not in local_stack.log.read_text()  # tokens are never logged
    assert scan["result_token"] not in str(item)  # only their hash is stored
    ttl = local_stack.client("dynamodb").describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at" and ttl["TimeToLiveStatus"] == "ENABLED"


def test_a_non_image_is_rejected_with_a_reason(local_stack):
    scan = submit(local_stack, b"GIF89a not really", filename="x.png", content_type="image/png")
    result = wait_for_result(local_stack, scan)
    assert result["status"] == "rejected" and result["reason"]["code"] == "unreadable_file"


def test_deleted_results_are_gone(local_stack, nih_dir):
    scan = submit(local_stack, sorted((nih_dir / "images").glob("*.jpg"))[4].read_bytes())
    wait_for_result(local_stack, scan)
    url, headers = f"{local_stack.url}/v1/scans/{scan['scan_id']}", {"X-Scan-Token": scan["result_token"]}
    assert requests.delete(url, headers=headers).status_code == 204
    assert requests.get(url, headers=headers).status_code == 404


def test_the_site_is_served_with_a_strict_content_security_policy(local_stack):
    page = requests.get(local_stack.url + "/")
    assert page.status_code == 200 and "PancScan" in page.text
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "<script>" not in page.text  # no inline scripts
    config = requests.get(local_stack.url + "/config.json").json()
    assert config["apiUrl"] == local_stack.url
    assert requests.get(local_stack.url + "/../template.yaml").status_code == 404
