"""The inference function as its Dockerfile builds it: requirements installed into a clean folder
(`make build-inference`), run with no site-packages, against moto in server mode."""

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from pancscan.service import scans
from pancscan_local.image import build
from pancscan_local.resources import create_resources
from tests.dicom_factory import display_to_hu, series_zip

REPO = Path(__file__).resolve().parents[2]
IMAGE = REPO / "build" / "inference"
EVENT = REPO / "events" / "s3_object_created.json"

RUN_HANDLER = """
import json, sys
import app
assert "tensorflow" not in sys.modules
try:
    import tensorflow
    raise SystemExit("tensorflow is importable inside the function")
except ImportError:
    pass
class Context:  # what Lambda's runtime passes
    function_name, memory_limit_in_mb, aws_request_id = "pancscan-inference", 1024, "test"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:pancscan-inference"
print(json.dumps(app.handler(json.load(open(sys.argv[1])), Context())))
"""


@pytest.fixture(scope="module")
def image_env():
    if not (IMAGE / "task" / "app.py").exists():
        pytest.fail("build/inference is missing: `make build-inference` (make test runs it) installs it")
    # Paths and ENV as the Dockerfile sets them, without reinstalling (that happened at install time).
    return {"PANCSCAN_MODEL": str(IMAGE / "opt" / "model" / "pancscan.tflite")}


def test_the_function_runs_from_its_image_contents_without_tensorflow(image_env, nih_dir, nih_slices, tmp_path):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # a port the system chooses
    server.start()
    try:
        endpoint = "http://127.0.0.1:%d" % server.get_host_and_port()[1]
        env = {"AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x",
               "AWS_SECRET_ACCESS_KEY": "x", "BUCKET_NAME": "img-uploads", "TABLE_NAME": "img-scans", **image_env}
        clients = {name: boto3.client(name, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="x",
                                      aws_secret_access_key="x") for name in ("s3", "dynamodb")}
        create_resources(clients["s3"], clients["dynamodb"], bucket="img-uploads", table="img-scans", site_origin="https://x.example")
        # A JPEG slice and a DICOM series: the image must hold the scanner-format readers too.
        uploads = {"image/jpeg": sorted((nih_dir / "images").glob("*.jpg"))[0].read_bytes(),
                   "application/zip": series_zip([display_to_hu(s.image) for s in nih_slices[:4]])}
        event = json.loads(EVENT.read_text())
        template_record = event["Records"][0]
        event["Records"] = []
        records = []
        for content_type, body in uploads.items():
            record, _ = scans.new_scan(scans.UploadRequest("scan", content_type, len(body)), now=0, ttl_seconds=10**10)
            clients["dynamodb"].put_item(TableName="img-scans", Item={
                "scan_id": {"S": record.scan_id}, "token_hash": {"S": record.token_hash}, "status": {"S": "pending"},
                "created_at": {"N": "0"}, "expires_at": {"N": str(record.expires_at)}, "content_type": {"S": content_type},
                "size": {"N": str(len(body))}})
            clients["s3"].put_object(Bucket="img-uploads", Key=scans.upload_key(record.scan_id), Body=body)
            event["Records"].append(json.loads(json.dumps(template_record)))
            event["Records"][-1]["s3"]["object"]["key"] = scans.upload_key(record.scan_id)
            records.append(record)
        (tmp_path / "event.json").write_text(json.dumps(event))

        result = subprocess.run(
            [sys.executable, "-S", "-c", RUN_HANDLER, str(tmp_path / "event.json")],
            cwd=IMAGE / "task", capture_output=True, text=True, timeout=120,
            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(IMAGE / "task"), **env},
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert json.loads(result.stdout.strip().splitlines()[-1]) == {"processed": ["complete", "complete"]}
        for record in records:
            stored = clients["dynamodb"].get_item(TableName="img-scans", Key={"scan_id": {"S": record.scan_id}})["Item"]
            assert stored["status"]["S"] == "complete"
        assert "dicom_series" in json.dumps(stored["result"])
        assert clients["s3"].list_objects_v2(Bucket="img-uploads", Prefix="uploads/")["KeyCount"] == 0
        # the series' slice sheets, written by the image's own code (PIL, boto3, no TensorFlow)
        sheets = clients["s3"].list_objects_v2(Bucket="img-uploads", Prefix="results/")["Contents"]
        assert sorted(o["Key"].rsplit("/", 1)[1] for o in sheets) == ["heatmaps-0.png", "slices-0.jpg"]
    finally:
        server.stop()


def test_image_folder_follows_the_dockerfile(tmp_path, monkeypatch):
    # Without installing: COPY and ENV lines alone put the package, handler and model in place.
    monkeypatch.setattr("pancscan_local.image.subprocess.run", lambda *a, **k: None)
    env = build(tmp_path / "image")
    assert (tmp_path / "image" / "task" / "app.py").is_file()
    assert (tmp_path / "image" / "task" / "pancscan" / "service" / "inference.py").is_file()
    # the runtime by role, and only it: neither the CLI nor the hospital-side client is in the image
    runtime = {p.name for p in (tmp_path / "image" / "task" / "pancscan").iterdir() if p.name != "__pycache__"}
    assert runtime == {"__init__.py", "errors.py", "reading", "detection", "service", "outputs"}
    assert Path(env["PANCSCAN_MODEL"]).is_file()
    assert not any((tmp_path / "image").rglob("*.weights.h5"))  # the Keras weights stay out
