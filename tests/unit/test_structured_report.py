"""A result as a DICOM Structured Report (TID 1500) in the source study, made at the hospital: what
it says, read back with highdicom, and that it passes the reference IOD validator."""

import io

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from pancscan_client.structured_report import SERIES_NUMBER, can_report, structured_report
from tests.dicom_factory import ct_dataset, dciodvfy_errors, to_bytes


def source_slice() -> pydicom.Dataset:
    """The header of a CT slice of a (made-up) patient, as a PACS would send it."""
    ds = pydicom.dcmread(io.BytesIO(to_bytes(ct_dataset(np.zeros((4, 4))))), stop_before_pixels=True)
    ds.PatientSex, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "F", "101500", "S1", "ACC-1"
    return ds


def result(label="cancer_detected", probability=0.91) -> dict:
    return {"status": "complete", "label": label, "probability": probability, "threshold": 0.705, "model_version": "0.2.1+test"}


def read_back(sr, tmp_path):
    path = tmp_path / "sr.dcm"
    sr.save_as(path, enforce_file_format=True)
    return hd.sr.srread(path)


def test_the_report_is_filed_in_the_source_study_as_a_new_series(tmp_path):
    source = source_slice()
    back = read_back(structured_report(result(), source), tmp_path)
    for name in ("PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID", "AccessionNumber"):
        assert back[name].value == source[name].value, name
    assert back.SeriesInstanceUID != source.SeriesInstanceUID and back.SeriesNumber == SERIES_NUMBER
    assert back.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert "research use, not a diagnosis" in back.SeriesDescription


@pytest.mark.parametrize("label, presence", [("cancer_detected", codes.SCT.Present), ("no_cancer_detected", codes.SCT.Absent)])
def test_the_report_says_the_finding_probability_threshold_model_and_slice(tmp_path, label, presence):
    source = source_slice()
    back = read_back(structured_report(result(label, 0.42), source), tmp_path)
    (group,) = back.content.get_image_measurement_groups()
    assert group.finding_type == codes.SCT.Mass and [site.value for site in group.finding_sites] == [codes.SCT.Pancreas]
    assert [(q.name, q.value) for q in group.get_qualitative_evaluations()] == [(codes.SCT.Mass, presence)]
    measured = {m.name: m.value for m in group.get_measurements()}
    assert measured == {codes.DCM.ProbabilityOfCancer: 0.42, codes.DCM.ThresholdValue: 0.705}
    assert all(m.unit == codes.UCUM.NoUnits for m in group.get_measurements())
    items = group[0].ContentSequence  # the group's container
    (name,), (version,) = items.find(codes.DCM.AlgorithmName), items.find(codes.DCM.AlgorithmVersion)
    assert (name.value, version.value) == ("PancScan", "0.2.1+test")
    assert [p.value for p in items.find(codes.DCM.AlgorithmParameters)] == ["threshold 0.705", f"label {label}"]
    assert [image.referenced_sop_instance_uid for image in group.source_images] == [source.SOPInstanceUID]
    assert "research use, not a diagnosis" in group.tracking_identifier


def test_only_complete_results_with_a_probability_are_reported():
    assert can_report(result())
    assert not can_report({"status": "rejected", "reason": {"code": "not_abdominal_ct"}})
    assert not can_report({"status": "complete", "probability": None})
    assert not can_report({"status": "failed", "probability": 0.5})


def test_the_probability_names_the_algorithm_that_gave_it(tmp_path):
    back = read_back(structured_report(result(), source_slice()), tmp_path)
    (group,) = back.content.get_image_measurement_groups()
    probability = next(m for m in group.get_measurements() if m.name == codes.DCM.ProbabilityOfCancer)
    items = probability[0].ContentSequence  # the NUM item's own content
    (name,), (version,) = items.find(codes.DCM.AlgorithmName), items.find(codes.DCM.AlgorithmVersion)
    assert (name.value, version.value) == ("PancScan", "0.2.1+test")


def test_the_slice_header_it_is_made_from_is_left_as_it_was():
    source = source_slice()
    for name in ("StudyTime", "ReferringPhysicianName"):
        if name in source:
            delattr(source, name)
    before = source.to_json_dict()
    structured_report(result(), source)
    assert source.to_json_dict() == before


def test_each_report_has_its_own_tracking_uid(tmp_path):
    uids = []
    for k in range(2):
        (group,) = read_back(structured_report(result(), source_slice()), tmp_path).content.get_image_measurement_groups()
        uids.append(group.tracking_uid)
    assert uids[0] != uids[1] and all(uid.startswith(("1.", "2.")) for uid in uids)


def test_the_report_passes_the_reference_iod_validator(tmp_path):
    assert dciodvfy_errors(structured_report(result(), source_slice()), tmp_path) == []


def test_the_report_names_pancscan_as_its_observing_device_and_is_complete(tmp_path):
    back = read_back(structured_report(result(), source_slice()), tmp_path)
    assert (back.Manufacturer, back.InstanceNumber, back.CompletionFlag) == ("PancScan", 1, "COMPLETE")
    context = back.ContentSequence
    device = {item.ConceptNameCodeSequence[0].CodeMeaning: item for item in context if item.RelationshipType == "HAS OBS CONTEXT"}
    assert device["Observer Type"].ConceptCodeSequence[0].CodeValue == "121007"  # Device
    assert (device["Device Observer Name"].TextValue, device["Device Observer Manufacturer"].TextValue,
            device["Device Observer Model Name"].TextValue) == ("PancScan (research use, not a diagnosis)", "PancScan", "0.2.1+test")
