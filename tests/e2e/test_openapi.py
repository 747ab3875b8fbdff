"""The OpenAPI document is complete, and the running API keeps to it (schemathesis)."""

import subprocess
import sys
from pathlib import Path

import requests

from pancscan.errors import FAILURE_CODES, REASON_CODES
from pancscan.service import scans


def test_the_document_names_every_route_error_and_reason_code(local_stack):
    document = requests.get(f"{local_stack.url}/v1/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    assert set(paths) == {"/v1/scans", "/v1/scans/{scan_id}", "/v1/scans/{scan_id}/slices", "/v1/health"}
    assert set(paths["/v1/scans/{scan_id}"]) == {"get", "delete"}
    assert {"200", "404", "409"} <= set(paths["/v1/scans/{scan_id}/slices"]["get"]["responses"])
    assert paths["/v1/scans/{scan_id}/slices"]["get"]["security"] == [{"scanToken": []}]
    assert {"400"} <= set(paths["/v1/scans"]["post"]["responses"])
    assert {"200", "404", "409"} <= set(paths["/v1/scans/{scan_id}"]["get"]["responses"])
    schemas = document["components"]["schemas"]
    assert set(schemas["ErrorDetail"]["properties"]["code"]["enum"]) == set(scans.REQUEST_ERROR_CODES)
    assert set(schemas["CreateScan"]["properties"]["content_type"]["enum"]) == set(scans.CONTENT_TYPES)
    # the public flow's scheme: the per-scan token, on the routes that read a scan
    assert document["components"]["securitySchemes"]["scanToken"] == {
        "type": "apiKey", "in": "header", "name": "x-scan-token", "description": "The result_token returned when the scan was created."}
    assert paths["/v1/scans/{scan_id}"]["get"]["security"] == [{"scanToken": []}]
    assert "security" not in paths["/v1/scans"]["post"]
    # what the API really answers: 400 with ErrorBody for invalid requests, never Powertools' default 422
    assert not any("422" in op["responses"] for path in paths.values() for op in path.values())
    assert "HTTPValidationError" not in schemas and document["servers"] == [{"url": "/"}]
    reason = schemas["Reason"]["properties"]["code"]["description"]
    assert all(code in reason for code in list(REASON_CODES) + list(FAILURE_CODES))


def test_the_running_api_conforms_to_its_document(local_stack, tmp_path):
    cli = Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [str(cli), "run", f"{local_stack.url}/v1/openapi.json", "--url", local_stack.url,
         "--max-examples", "25", "--seed", "1", "--no-color"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-4000:]
