"""End to end over HTTP, as a browser does it: create, multipart upload to S3, poll, read, delete."""

import http.client
import re
import time
from urllib.parse import urlsplit

import pytest
import requests

from pancscan.detection.predict import label_confidence
from pancscan_local.template import resource

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
    assert local_stack.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="uploads/")["KeyCount"] == 0
    item = local_stack.client("dynamodb").get_item(TableName=TABLE, Key={"scan_id": {"S": scan["scan_id"]}})["Item"]
    assert int(item["expires_at"]["N"]) > time.time() + 6 * 86400
    assert scan["result_token"] not in local_stack.log_about(scan["scan_id"])  # tokens are never logged
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


def template_site_headers() -> dict[str, str]:
    """The security headers template.yaml has CloudFront send with the site (its CSP apart)."""
    config = resource("SiteHeadersPolicy")["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    hsts = config["StrictTransportSecurity"]
    return {
        "Strict-Transport-Security": f"max-age={hsts['AccessControlMaxAgeSec']}"
                                     + ("; includeSubDomains" if hsts.get("IncludeSubdomains") else "")
                                     + ("; preload" if hsts.get("Preload") else ""),
        "X-Content-Type-Options": "nosniff" if config["ContentTypeOptions"]["Override"] else None,
        "X-Frame-Options": config["FrameOptions"]["FrameOption"],
        "Referrer-Policy": config["ReferrerPolicy"]["ReferrerPolicy"],
    }


def directives(policy: str) -> dict[str, str]:
    return {d.split()[0]: " ".join(d.split()[1:]) for d in (part.strip() for part in policy.split(";")) if d}


@pytest.mark.parametrize("path", ["/", "/app.js", "/config.json", "/no-such-file"])
def test_the_site_is_served_with_the_templates_security_headers(local_stack, path):
    answer = requests.get(local_stack.url + path)
    for name, value in template_site_headers().items():
        assert answer.headers.get(name) == value, name
    served = directives(answer.headers["Content-Security-Policy"])
    deployed = directives(resource("SiteHeadersPolicy")["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
                          ["ContentSecurityPolicy"]["ContentSecurityPolicy"]["Fn::Sub"])
    assert served.keys() == deployed.keys()
    # the same policy but where the API and the bucket are: locally they are this origin and moto
    assert {k: v for k, v in served.items() if k != "connect-src"} == {k: v for k, v in deployed.items() if k != "connect-src"}
    assert served["script-src"] == "'self'" and "unsafe" not in answer.headers["Content-Security-Policy"]


def test_the_page_has_no_inline_script_for_the_policy_to_block(local_stack):
    page = requests.get(local_stack.url + "/")
    assert page.status_code == 200 and "PancScan" in page.text
    scripts = re.findall(r"<script\b[^>]*>", page.text, re.IGNORECASE)
    assert scripts and all(re.search(r"\bsrc=", tag) for tag in scripts), scripts  # module scripts included
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", page.text, re.IGNORECASE)  # no inline event handlers
    assert requests.get(local_stack.url + "/config.json").json()["apiUrl"] == local_stack.url


@pytest.mark.parametrize("path", ["/../template.yaml", "/%2e%2e/template.yaml", "/..%2ftemplate.yaml",
                                  "/site/../../template.yaml", "//etc/passwd", "/../../../../etc/passwd"])
def test_no_file_outside_the_site_is_served(local_stack, path):
    # http.client sends the path as written; requests would normalise the dots away first
    address = urlsplit(local_stack.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    connection.request("GET", path)
    answer = connection.getresponse()
    body = answer.read()
    connection.close()
    assert answer.status == 404 and b"AWSTemplateFormatVersion" not in body and b"root:" not in body


@pytest.mark.parametrize("method, path, allowed", [("POST", "/", None), ("PUT", "/index.html", None),
                                                   ("PUT", "/v1/scans", "POST"), ("POST", "/v1/health", "GET"),
                                                   ("PATCH", "/v1/scans/00000000-0000-4000-8000-000000000000", "GET, DELETE")])
def test_a_method_a_path_does_not_take_gets_405(local_stack, method, path, allowed):
    answer = requests.request(method, local_stack.url + path)
    assert answer.status_code == 405
    if allowed:  # the API's own answer, naming what the route takes
        assert answer.headers["Allow"] == allowed and answer.json()["error"]["code"] == "method_not_allowed"
