"""A result as a DICOM Structured Report for the source study (TID 1500 Measurement Report, with
highdicom): made at the hospital, from the result and the header of the slice it points to.

What it says, in the codes DICOM and SNOMED CT already have for it:
- one measurement group, finding type "Mass" (SCT 4147007) at finding site "Pancreas" (SCT 15776009),
  its tracking identifier saying "PancScan: research use, not a diagnosis";
- a qualitative evaluation "Mass": "Present" or "Absent" (SCT 52101004 / 272519000), the model's label
  at its threshold;
- measurements "Probability of cancer" (DCM 111047) and "Threshold value" (DCM 122411), unit "no units";
- the algorithm's identification: PancScan, the model version, and the threshold and label as parameters;
- the most suspicious slice as the group's source image, and as the report's evidence.

TID 1500 has no place for free text in a measurement group, so the research-use warning is in the
tracking identifier, the series description and the observer device's name, not in a TEXT item.
"""

from __future__ import annotations

import copy

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

WARNING = "research use, not a diagnosis"
# Type 2 patient and study attributes: highdicom copies them from the evidence, which may lack some.
TYPE_2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "StudyID",
          "AccessionNumber", "ReferringPhysicianName")
SERIES_NUMBER = 9902  # the secondary capture's series is 9901


def can_report(result: dict) -> bool:
    return result.get("status") == "complete" and result.get("probability") is not None


def structured_report(result: dict, evidence: Dataset) -> hd.sr.Comprehensive3DSR:
    """The SR for ``result``; ``evidence`` is the header of the source slice it refers to (the most
    suspicious slice of a series), whose patient and study the report is filed into."""
    evidence = copy.deepcopy(evidence)
    for name in TYPE_2:
        if name not in evidence:
            setattr(evidence, name, "")
    cancer = result["label"] == "cancer_detected"
    algorithm = hd.sr.AlgorithmIdentification(
        name="PancScan", version=str(result["model_version"]),
        parameters=[f"threshold {result['threshold']}", f"label {result['label']}"])
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(identifier=f"PancScan: {WARNING}"),  # highdicom adds its UID
        finding_type=codes.SCT.Mass,
        finding_sites=[hd.sr.FindingSite(anatomic_location=codes.SCT.Pancreas)],
        algorithm_id=algorithm,
        measurements=[
            hd.sr.Measurement(name=codes.DCM.ProbabilityOfCancer, value=float(result["probability"]), unit=codes.UCUM.NoUnits,
                              algorithm_id=algorithm),
            hd.sr.Measurement(name=codes.DCM.ThresholdValue, value=float(result["threshold"]), unit=codes.UCUM.NoUnits),
        ],
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(name=codes.SCT.Mass,
                                                             value=codes.SCT.Present if cancer else codes.SCT.Absent)],
        source_images=[hd.sr.SourceImageForMeasurementGroup(evidence.SOPClassUID, evidence.SOPInstanceUID)],
    )
    device = hd.sr.ObserverContext(
        observer_type=codes.cid270.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name=f"PancScan ({WARNING})", manufacturer_name="PancScan", model_name=str(result["model_version"])))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=[group],
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[evidence], content=report[0], series_instance_uid=generate_uid(), series_number=SERIES_NUMBER,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="PancScan", is_complete=True,
        series_description=f"PancScan result ({WARNING})")
    return sr
