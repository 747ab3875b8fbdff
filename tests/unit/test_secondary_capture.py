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


def decoded(image: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(image["data"]))))


def test_the_picture_is_the_caption_band_above_the_slice_with_its_heatmap_pixel_for_pixel():
    from PIL import ImageDraw

    from pancscan_client.overlay import overlay

    for label, words in (("cancer_detected", "lesion suspected"), ("no_cancer_detected", "no lesion suspected")):
        ramp = np.tile(np.linspace(0, 255, 64), (64, 1))  # every heat level, so the scale to 0..1 shows
        given = result() | {"label": label, "probability": 0.4567, "heatmap": png(ramp),
                            "slice_image": png(np.tile(np.arange(256) % 200, (256, 1)))}
        band = Image.new("RGB", (256, CAPTION_PX), (0, 0, 0))
        draw = ImageDraw.Draw(band)
        draw.text((4, 2), f"{words}  p=0.46  model 2026.11-test", fill=(255, 255, 255))
        draw.text((4, 14), "PancScan research software - not for diagnosis", fill=(255, 200, 0))
        slice_ = np.asarray(overlay(decoded(given["slice_image"]).astype(np.float32), decoded(given["heatmap"]) / 255.0))
        pixels = secondary_capture(given, None).pixel_array
        assert np.array_equal(pixels, np.concatenate([np.asarray(band), slice_])), label


def test_the_capture_header_says_what_it_is_when_and_by_which_model():
    ds = secondary_capture(result(), ct_dataset(np.zeros((32, 32))), now=1_000_000_000.0)  # 2001-09-09 01:46:40 UTC
    assert {name: ds[name].value for name in (
        "SeriesNumber", "InstanceNumber", "SeriesDescription", "ImageType", "Manufacturer", "SoftwareVersions",
        "ContentDate", "ContentTime", "BodyPartExamined", "SamplesPerPixel", "PhotometricInterpretation", "PlanarConfiguration",
        "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation")} == {
        "SeriesNumber": 9901, "InstanceNumber": 1, "SeriesDescription": "PancScan heatmap (research, not for diagnosis)",
        "ImageType": ["DERIVED", "SECONDARY"], "Manufacturer": "PancScan", "SoftwareVersions": "2026.11-test",
        "ContentDate": "20010909", "ContentTime": "014640", "BodyPartExamined": "PANCREAS", "SamplesPerPixel": 3,
        "PhotometricInterpretation": "RGB", "PlanarConfiguration": 0, "BitsAllocated": 8, "BitsStored": 8, "HighBit": 7,
        "PixelRepresentation": 0}
    assert ds.DerivationDescription == ("PancScan result cancer_detected, probability 0.81, threshold 0.69; most suspicious slice "
                                        "with its lesion heatmap. PancScan research software - not for diagnosis.")
    assert (ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID, ds.file_meta.TransferSyntaxUID) == (
        ds.SOPClassUID, ds.SOPInstanceUID, pydicom.uid.ExplicitVRLittleEndian)


def test_without_a_time_the_capture_is_dated_now():
    import time

    before = time.gmtime()
    ds = secondary_capture(result(), None)
    after = time.gmtime()
    assert time.strftime("%Y%m%d", before) <= ds.ContentDate <= time.strftime("%Y%m%d", after)
    assert ds.ContentDate + ds.ContentTime >= time.strftime("%Y%m%d%H%M%S", before)


def test_an_unknown_model_version_is_empty_and_the_description_fits_its_1024_characters():
    assert secondary_capture(result() | {"model_version": None}, None).SoftwareVersions == ""
    long = secondary_capture(result() | {"label": "x" * 2000}, None)
    assert len(long.DerivationDescription) == 1024 and long.DerivationDescription.startswith("PancScan result xxx")


def test_a_source_with_an_empty_study_uid_gets_a_new_one_not_an_empty_one():
    source = ct_dataset(np.zeros((32, 32)))
    source.StudyInstanceUID = ""
    ds = secondary_capture(result(), source)
    assert ds.StudyInstanceUID and ds.StudyInstanceUID != "" and ds.PatientID == source.PatientID
