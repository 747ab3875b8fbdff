"""The result as a DICOM Secondary Capture, filed into the source study, made at the hospital."""

import base64
import io

import numpy as np
import pydicom
from PIL import Image

from pancscan_client import submit
from pancscan_client.secondary_capture import CAPTION_PX, can_capture, secondary_capture
from tests.dicom_factory import ct_dataset, dciodvfy_errors, series_zip, to_bytes


def png(values: np.ndarray) -> dict:
    buffer = io.BytesIO()
    Image.fromarray(values.astype(np.uint8)).save(buffer, format="PNG")
    return {"media_type": "image/png", "data": base64.b64encode(buffer.getvalue()).decode()}


def result() -> dict:
    heat = np.zeros((64, 64))
    heat[10:20, 40:50] = 255  # a hot spot in the upper right
    return {"scan_id": "0f8fad5b-d9cb-469f-a165-70867728950e", "status": "complete", "label": "cancer_detected",
            "probability": 0.81, "threshold": 0.69, "model_version": "2026.11-test",
            "heatmap": png(heat), "slice_image": png(np.full((256, 256), 100))}


def test_the_capture_is_filed_in_the_source_study_as_a_new_series():
    source = ct_dataset(np.zeros((32, 32)))
    ds = secondary_capture(result(), source)
    assert ds.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage and ds.Modality == "OT" and ds.ConversionType == "WSD"
    assert ds.StudyInstanceUID == source.StudyInstanceUID and ds.PatientName == source.PatientName and ds.PatientID == source.PatientID
    assert ds.SeriesInstanceUID != source.SeriesInstanceUID and ds.SOPInstanceUID != source.SOPInstanceUID
    assert ds.BurnedInAnnotation == "YES" and "not for diagnosis" in ds.DerivationDescription
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    read = pydicom.dcmread(io.BytesIO(buffer.getvalue()))
    pixels = read.pixel_array
    assert pixels.shape == (256 + CAPTION_PX, 256, 3)
    hot, cold = pixels[CAPTION_PX + 60, 180], pixels[CAPTION_PX + 200, 40]  # inside and far from the hot spot
    assert hot[0] > hot[1] + 100 and cold[0] == cold[1] == cold[2] == 100
    assert pixels[:CAPTION_PX].max() > 0  # the caption is drawn


def test_without_a_source_the_patient_attributes_are_present_and_empty():
    ds = secondary_capture(result(), None)
    assert ds.PatientName == "" and ds.PatientID == "" and ds.StudyInstanceUID


def test_only_complete_results_with_a_slice_image_are_captured():
    assert can_capture(result())
    assert not can_capture(result() | {"status": "rejected"})
    assert not can_capture(result() | {"slice_image": None})


def test_the_batch_client_reads_the_header_of_a_file_or_of_a_series_zip(tmp_path):
    single = submit.Scan(tmp_path, to_bytes(ct_dataset(np.zeros((32, 32)))), "scan.dcm", "application/dicom")
    series = submit.Scan(tmp_path, series_zip([np.zeros((32, 32))] * 3), "scan.zip", "application/zip")
    jpeg = submit.Scan(tmp_path, b"\xff\xd8\xff\xe0 not really", "scan.jpg", "image/jpeg")
    assert submit.dicom_header(single).StudyInstanceUID == submit.dicom_header(series).StudyInstanceUID
    assert submit.dicom_header(jpeg) is None
    written = submit.write_capture(series, result(), tmp_path / "sc")
    assert pydicom.dcmread(written).StudyInstanceUID == submit.dicom_header(series).StudyInstanceUID
    assert submit.write_capture(jpeg, result(), tmp_path / "sc") is None


def test_a_dicomdir_or_an_object_without_an_image_is_not_taken_for_the_source(tmp_path):
    from pydicom.uid import MediaStorageDirectoryStorage

    from tests.dicom_factory import zip_of

    image = ct_dataset(np.zeros((32, 32)))
    directory = pydicom.Dataset()
    directory.file_meta = pydicom.dataset.FileMetaDataset()
    directory.file_meta.MediaStorageSOPClassUID = MediaStorageDirectoryStorage
    directory.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    directory.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    directory.PatientName = "Someone^Else"
    without_pixels = ct_dataset(np.zeros((32, 32)))
    del without_pixels.PixelData
    without_pixels.PatientName = "Another^Person"
    members = {"A/DICOMDIR": _saved(directory), "A/0000": _saved(without_pixels), "A/IM1": to_bytes(image)}
    header = submit.dicom_header(submit.Scan(tmp_path, zip_of(members), "scan.zip", "application/zip"))
    assert header.PatientName == image.PatientName and header.StudyInstanceUID == image.StudyInstanceUID


def _saved(ds) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_the_capture_passes_the_reference_iod_validator(tmp_path):
    capture = secondary_capture(result(), pydicom.dcmread(io.BytesIO(to_bytes(ct_dataset(np.zeros((4, 4)))))))
    assert dciodvfy_errors(capture, tmp_path) == []
    del capture.BodyPartExamined  # as before: General Series' Laterality (Type 2C) then counts as missing
    assert any("Laterality" in error for error in dciodvfy_errors(capture, tmp_path))
