"""GET /v1/scans/{id}?format=fhir: a FHIR R4 (4.3.0) Bundle that the fhir.resources models accept."""

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.device import Device
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation

from tests.integration.test_pipeline import create, upload


def resources(bundle: dict) -> dict[str, dict]:
    Bundle.model_validate(bundle)
    found = {entry["resource"]["resourceType"]: entry["resource"] for entry in bundle["entry"]}
    models = {"DiagnosticReport": DiagnosticReport, "Observation": Observation, "Device": Device}
    for kind, resource in found.items():
        models[kind].model_validate(resource)
    return found


def test_a_complete_scan_is_a_valid_diagnostic_report_with_its_observation_and_device(aws, api, inference, ct_slice):
    created = create(api, ct_slice)
    inference(upload(aws, created, ct_slice))
    _, result = api("GET", f"/v1/scans/{created['scan_id']}", token=created["result_token"])
    status, bundle = api("GET", f"/v1/scans/{created['scan_id']}", token=created["result_token"], query={"format": "fhir"})
    assert status == 200
    found = resources(bundle)
    report, observation, device = found["DiagnosticReport"], found["Observation"], found["Device"]
    assert report["status"] == "final" and "not a diagnosis" in report["conclusion"].lower()
    assert report["identifier"][0]["value"] == created["scan_id"] and "subject" not in report
    assert observation["valueQuantity"]["value"] == result["probability"]
    assert observation["interpretation"][0]["coding"][0]["code"] == result["label"]
    assert device["version"][0]["value"] == result["model_version"]
    assert report["result"][0]["reference"] == f"urn:uuid:{observation['id']}"


def test_a_rejected_scan_is_a_cancelled_report_with_its_reason(aws, api, inference):
    created = create(api, b"not an image at all", "image/png", "scan.png")
    inference(upload(aws, created, b"not an image at all"))
    status, bundle = api("GET", f"/v1/scans/{created['scan_id']}", token=created["result_token"], query={"format": "fhir"})
    found = resources(bundle)
    assert status == 200 and "Observation" not in found
    assert found["DiagnosticReport"]["status"] == "cancelled" and "unreadable_file" in found["DiagnosticReport"]["conclusion"]


@pytest.mark.parametrize("fmt,code", [("fhir", 409), ("xml", 400)])
def test_a_pending_scan_has_no_report_yet_and_unknown_formats_are_refused(api, ct_slice, fmt, code):
    created = create(api, ct_slice)
    status, body = api("GET", f"/v1/scans/{created['scan_id']}", token=created["result_token"], query={"format": fmt})
    assert status == code and body["error"]["code"] == ("not_ready" if code == 409 else "invalid_request")
