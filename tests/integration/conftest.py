"""moto in-process, with the bucket and table built from template.yaml; the real handlers."""

import copy
import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from pancscan_local.lambda_runtime import LocalContext, load_handler
from pancscan_local.resources import create_resources

EVENTS = Path(__file__).resolve().parents[2] / "events"
BUCKET, TABLE = "pancscan-test-uploads", "pancscan-test-scans"


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for name, value in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                        "BUCKET_NAME": BUCKET, "TABLE_NAME": TABLE, "MAX_UPLOAD_BYTES": "2000000"}.items():
        monkeypatch.setenv(name, value)
    # moto drops boto3's default session per test by default, and every new session parses botocore's
    # endpoint and service files again (~0.3 s a client); the same credentials serve every test here
    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        s3, dynamodb = boto3.client("s3"), boto3.client("dynamodb")
        create_resources(s3, dynamodb, bucket=BUCKET, table=TABLE, site_origin="https://pancscan.example")
        yield {"s3": s3, "dynamodb": dynamodb}


@pytest.fixture
def api(aws):
    handler = load_handler("api", cold=True)

    def call(method: str, path: str, body: dict | None = None, token: str | None = None, query: dict | None = None) -> tuple[int, dict | None]:
        event = json.loads((EVENTS / "api_create_scan.json").read_text())
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["requestContext"]["http"]["method"] = method
        event["body"] = None if body is None else json.dumps(body)
        if token is not None:
            event["headers"]["x-scan-token"] = token
        if query:
            event["queryStringParameters"] = query
            event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
        response = handler(event, LocalContext("api"))
        return response["statusCode"], json.loads(response["body"]) if response.get("body") else None

    return call


@pytest.fixture
def inference(aws):
    handler = load_handler("inference", cold=True)

    def invoke(key: str) -> dict:
        event = json.loads((EVENTS / "s3_object_created.json").read_text())
        event["Records"][0]["s3"]["bucket"]["name"] = BUCKET
        event["Records"][0]["s3"]["object"]["key"] = key
        return handler(copy.deepcopy(event), LocalContext("inference"))

    return invoke


@pytest.fixture
def ct_slice(nih_dir) -> bytes:
    return sorted((nih_dir / "images").glob("*.jpg"))[0].read_bytes()
