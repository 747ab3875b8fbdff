"""The local stack's own pieces: API Gateway event shape, and a clear refusal of busy ports."""

import base64
import socket

import pytest

from pancscan_local.lambda_runtime import http_api_event, response_parts
from pancscan_local.stack import LocalStack


def test_http_api_event_has_the_payload_2_shape():
    event = http_api_event("POST", "/v1/scans", "a=1&b=2", {"Content-Type": "application/json", "X-Scan-Token": "t"}, b'{"x": 1}', "10.0.0.1")
    assert event["version"] == "2.0" and event["rawPath"] == "/v1/scans"
    assert event["requestContext"]["http"]["method"] == "POST" and event["requestContext"]["stage"] == "$default"
    assert event["headers"]["x-scan-token"] == "t"  # HTTP APIs lower-case header names
    assert event["queryStringParameters"] == {"a": "1", "b": "2"}
    assert event["body"] == '{"x": 1}' and event["isBase64Encoded"] is False
    binary = http_api_event("POST", "/v1/x", "", {}, b"\xff\x00", "10.0.0.1")
    assert binary["isBase64Encoded"] and base64.b64decode(binary["body"]) == b"\xff\x00"


def test_response_parts_decode_base64_bodies():
    status, headers, body = response_parts({"statusCode": 200, "headers": {"a": "b"}, "body": base64.b64encode(b"\x89PNG").decode(), "isBase64Encoded": True})
    assert (status, headers, body) == (200, {"a": "b"}, b"\x89PNG")


def test_a_busy_port_is_refused_with_the_option_to_change():
    with socket.socket() as busy, socket.socket() as spare:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        spare.bind(("127.0.0.1", 0))
        free = spare.getsockname()[1]
        spare.close()
        with pytest.raises(SystemExit, match="--s3-port"):
            LocalStack(port=free, s3_port=busy.getsockname()[1]).start()
