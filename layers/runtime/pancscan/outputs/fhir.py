"""A scan's result as FHIR R4 (4.3.0, R4B): a Bundle holding a DiagnosticReport, the Observation
it reports (probability, label, confidence, threshold) and the Device (PancScan and its model).

Plain dicts, no FHIR library at run time; the tests validate them with the fhir.resources models.
No patient is named: the report has no subject (the hospital links it to its own records).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from pancscan.service.scans import COMPLETE, ScanRecord

DISCLAIMER = ("Research software, not a medical device: the model learned from real tumours of one hospital and "
              "normal pancreases of another, misses many tumours and is untested on other hospitals' scans. Not a diagnosis.")
LABEL_TEXT = {"cancer_detected": "Cancer detected", "no_cancer_detected": "No cancer detected"}
PANCSCAN_SYSTEM = "https://github.com/pancscan/pancscan/result-codes"


def _instant(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat().replace("+00:00", "Z")


def _ratio(value: float) -> dict:
    return {"value": round(float(value), 4), "unit": "1", "system": "http://unitsofmeasure.org", "code": "1"}


def fhir_bundle(record: ScanRecord, now: int) -> dict:
    result = record.result
    ids = {name: str(uuid.uuid5(uuid.NAMESPACE_URL, f"pancscan:{record.scan_id}:{name}")) for name in ("report", "observation", "device")}
    device = {
        "resourceType": "Device",
        "id": ids["device"],
        "deviceName": [{"name": "PancScan", "type": "user-friendly-name"}],
        "version": [{"value": result.get("model_version") or "unknown"}],
        "type": {"text": "AI software for research (not a medical device)"},
        "note": [{"text": DISCLAIMER}],
    }
    report = {
        "resourceType": "DiagnosticReport",
        "id": ids["report"],
        "identifier": [{"system": "urn:pancscan:scan-id", "value": record.scan_id}],
        "code": {"text": "PancScan research analysis of abdominal CT for a pancreatic lesion"},
        "issued": _instant(now),
        "effectiveDateTime": _instant(record.created_at),
    }
    entries = [device]
    if record.status == COMPLETE:
        observation = {
            "resourceType": "Observation",
            "id": ids["observation"],
            "status": "final",
            "code": {"text": "Likelihood of a pancreatic lesion (PancScan, calibrated probability)"},
            "valueQuantity": _ratio(result["probability"]),
            "interpretation": [{"coding": [{"system": PANCSCAN_SYSTEM, "code": result["label"]}],
                                "text": LABEL_TEXT[result["label"]]}],
            "component": [
                {"code": {"text": "Confidence in the label given"}, "valueQuantity": _ratio(result["confidence"])},
                {"code": {"text": "Decision threshold (95% specificity on validation patients' normal slices)"},
                 "valueQuantity": _ratio(result["threshold"])},
            ],
            "device": {"reference": f"urn:uuid:{ids['device']}"},
            "note": [{"text": DISCLAIMER}],
        }
        entries.append(observation)
        report |= {"status": "final", "result": [{"reference": f"urn:uuid:{ids['observation']}"}],
                   "conclusion": f"{LABEL_TEXT[result['label']]} (probability {result['probability']:.3f}). {DISCLAIMER}"}
    else:  # rejected or failed: no observation, the reason instead
        reason = result.get("reason") or {}
        report |= {"status": "cancelled",
                   "conclusion": f"Not analysed ({reason.get('code', record.status)}): {reason.get('message', '')}"}
    entries.append(report)
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": _instant(now),
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in entries],
    }
