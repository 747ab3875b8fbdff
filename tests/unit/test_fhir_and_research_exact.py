"""The exact documents integrators and researchers read: the FHIR Bundle of a complete, a rejected and a
failed scan, and the de-identified research entry and its CSV."""

import io
import uuid

from pancscan.outputs.fhir import DISCLAIMER, PANCSCAN_SYSTEM, fhir_bundle
from pancscan.service import scans
from pancscan.service.research import CSV_FIELDS, research_entry, write_csv

SCAN_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
CREATED, NOW = 1_700_000_000, 1_700_000_100  # 2023-11-14T22:13:20Z and 100 s later


def record(status, result) -> scans.ScanRecord:
    return scans.ScanRecord(SCAN_ID, "hash", status, CREATED, CREATED + 3600, "application/zip", 10, result=result)


def ids(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"pancscan:{SCAN_ID}:{name}"))


def device(version: str) -> dict:
    return {"resourceType": "Device", "id": ids("device"), "deviceName": [{"name": "PancScan", "type": "user-friendly-name"}],
            "version": [{"value": version}], "type": {"text": "AI software for research (not a medical device)"},
            "note": [{"text": DISCLAIMER}]}


def ratio(value: float) -> dict:
    return {"value": value, "unit": "1", "system": "http://unitsofmeasure.org", "code": "1"}


def report(**fields) -> dict:
    return {"resourceType": "DiagnosticReport", "id": ids("report"), "identifier": [{"system": "urn:pancscan:scan-id", "value": SCAN_ID}],
            "code": {"text": "PancScan research analysis of abdominal CT for a pancreatic lesion"},
            "issued": "2023-11-14T22:15:00Z", "effectiveDateTime": "2023-11-14T22:13:20Z"} | fields


def bundle(*resources) -> dict:
    return {"resourceType": "Bundle", "type": "collection", "timestamp": "2023-11-14T22:15:00Z",
            "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources]}


def test_the_bundle_of_a_complete_scan_is_exactly_this():
    result = {"label": "cancer_detected", "probability": 0.812345, "confidence": 0.9, "threshold": 0.70512, "model_version": "0.2.1"}
    observation = {
        "resourceType": "Observation", "id": ids("observation"), "status": "final",
        "code": {"text": "Likelihood of a pancreatic lesion (PancScan, calibrated probability)"},
        "valueQuantity": ratio(0.8123),
        "interpretation": [{"coding": [{"system": PANCSCAN_SYSTEM, "code": "cancer_detected"}], "text": "Cancer detected"}],
        "component": [{"code": {"text": "Confidence in the label given"}, "valueQuantity": ratio(0.9)},
                      {"code": {"text": "Decision threshold (95% specificity on validation patients' normal slices)"},
                       "valueQuantity": ratio(0.7051)}],
        "device": {"reference": f"urn:uuid:{ids('device')}"}, "note": [{"text": DISCLAIMER}]}
    expected = bundle(device("0.2.1"), observation, report(
        status="final", result=[{"reference": f"urn:uuid:{ids('observation')}"}],
        conclusion=f"Cancer detected (probability 0.812). {DISCLAIMER}"))
    assert fhir_bundle(record(scans.COMPLETE, result), NOW) == expected
    no = fhir_bundle(record(scans.COMPLETE, result | {"label": "no_cancer_detected"}), NOW)["entry"][1]["resource"]["interpretation"]
    assert no == [{"coding": [{"system": PANCSCAN_SYSTEM, "code": "no_cancer_detected"}], "text": "No cancer detected"}]


def test_the_bundle_of_a_rejected_or_failed_scan_has_the_reason_and_no_observation():
    rejected = {"reason": {"code": "not_abdominal_ct", "message": "Not a CT slice."}, "model_version": None}
    assert fhir_bundle(record(scans.REJECTED, rejected), NOW) == bundle(
        device("unknown"), report(status="cancelled", conclusion="Not analysed (not_abdominal_ct): Not a CT slice."))
    assert fhir_bundle(record(scans.FAILED, {}), NOW)["entry"][1]["resource"]["conclusion"] == "Not analysed (failed): "


def test_a_research_entry_keeps_exactly_the_output_and_the_technical_allow_list():
    result = {"label": "no_cancer_detected", "probability": 0.2, "confidence": 0.8, "threshold": 0.7, "model_version": "0.2.1",
              "reason": None, "technical": {"format": "dicom_series", "modality": "CT", "slices": 300, "slice_thickness_mm": 2.0,
                                            "pixel_spacing_mm": [0.7, 0.75]},
              "series": {"scored_slices": 240, "most_suspicious_slice": 220, "slice_probabilities": [0.1] * 300}}
    assert research_entry(SCAN_ID, "complete", result, NOW) == {
        "scan_id": SCAN_ID, "scored_on": "2023-11-14", "status": "complete", "label": "no_cancer_detected", "probability": 0.2,
        "confidence": 0.8, "threshold": 0.7, "model_version": "0.2.1", "reason_code": None, "format": "dicom_series",
        "modality": "CT", "slices": 300, "slice_thickness_mm": 2.0, "pixel_spacing_mm": "0.7 x 0.75", "scored_slices": 240,
        "most_suspicious_slice": 220}
    rejected = research_entry(SCAN_ID, "rejected", {"reason": {"code": "too_large", "message": "m"}}, NOW)
    assert rejected == dict.fromkeys(CSV_FIELDS) | {"scan_id": SCAN_ID, "scored_on": "2023-11-14", "status": "rejected",
                                                    "reason_code": "too_large"}


def test_the_csv_is_oldest_first_with_its_header_and_nothing_else():
    entries = [research_entry(sid, "complete", {"label": "no_cancer_detected"}, day) | {"extra": "dropped"}
               for sid, day in (("b", NOW), ("a", NOW), ("c", NOW - 86400))]
    out = io.StringIO()
    assert write_csv(entries, out) == 3
    lines = out.getvalue().splitlines()
    assert lines[0] == ",".join(CSV_FIELDS)
    assert [line.split(",")[:3] for line in lines[1:]] == [["c", "2023-11-13", "complete"], ["a", "2023-11-14", "complete"],
                                                           ["b", "2023-11-14", "complete"]]
    assert "dropped" not in out.getvalue()
