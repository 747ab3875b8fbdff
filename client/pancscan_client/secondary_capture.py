"""A result as a DICOM Secondary Capture image: the scored slice with its heatmap and the result burned
in, for a PACS. Made by the batch client at the hospital, never by the service.

The service keeps no DICOM header values (it reads the technical allow-list from the upload and
deletes it), so it cannot file an image into a patient's study. The batch client can: it still
holds the source files, and copies the patient and study attributes from them into the capture (a
new series in the same study). The capture is written on the hospital's machine; nothing here
sends anything.
"""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import numpy as np
from PIL import Image, ImageDraw
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from pancscan_client.overlay import overlay

# Patient and study modules, copied from the source so that the capture files into the same study.
FROM_SOURCE = ("SpecificCharacterSet", "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
               "StudyDate", "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName", "StudyDescription")
# Type 2 attributes of the Secondary Capture IOD: present, empty when the source has no value.
TYPE_2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "StudyID",
          "AccessionNumber", "ReferringPhysicianName", "PatientOrientation")
CAPTION_PX = 28
DISCLAIMER = "PancScan research software - not for diagnosis"


def can_capture(result: dict) -> bool:
    """A complete result with the slice and heatmap the capture is drawn from (DICOM and NIfTI inputs)."""
    return result.get("status") == "complete" and bool(result.get("heatmap")) and bool(result.get("slice_image"))


def picture(result: dict) -> np.ndarray:
    """RGB pixels: a caption band (label, probability, model, disclaimer) above the slice with its heatmap."""
    grey = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["slice_image"]["data"]))))  # the API's PNGs are 8-bit grey
    heat = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["heatmap"]["data"])))) / 255
    image = overlay(grey, heat)
    canvas = Image.new("RGB", (image.width, image.height + CAPTION_PX))  # black
    canvas.paste(image, (0, CAPTION_PX))
    draw = ImageDraw.Draw(canvas)  # its ink: white
    label = "lesion suspected" if result["label"] == "cancer_detected" else "no lesion suspected"
    draw.text((4, 2), f"{label}  p={result['probability']:.2f}  model {result['model_version']}")
    draw.text((4, 14), DISCLAIMER, fill=(255, 200, 0))
    return np.asarray(canvas)


def secondary_capture(result: dict, source: Dataset | None, now: float | None = None) -> Dataset:
    """The capture as a pydicom dataset with its file meta; ``source`` is a header of the scan's DICOM."""
    pixels = picture(result)
    ds = Dataset()
    for name in TYPE_2:
        setattr(ds, name, "")
    for name in FROM_SOURCE:
        value: Any = getattr(source, name, None)
        if value not in (None, ""):
            setattr(ds, name, value)
    if "StudyInstanceUID" not in ds:
        ds.StudyInstanceUID = generate_uid()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "OT"
    # an unpaired organ: Laterality (General Series, Type 2C) is then not required, and dciodvfy agrees
    ds.BodyPartExamined = "PANCREAS"
    ds.ConversionType = "WSD"  # workstation
    ds.SeriesNumber = 9901
    ds.InstanceNumber = 1
    ds.SeriesDescription = "PancScan heatmap (research, not for diagnosis)"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.BurnedInAnnotation = "YES"
    stamp = time.gmtime(now)  # now, when None
    ds.ContentDate, ds.ContentTime = time.strftime("%Y%m%d", stamp), time.strftime("%H%M%S", stamp)
    ds.Manufacturer = "PancScan"
    ds.SoftwareVersions = str(result.get("model_version") or "")
    ds.DerivationDescription = (f"PancScan result {result.get('label')}, probability {result.get('probability')}, "
                                f"threshold {result.get('threshold')}; most suspicious slice with its lesion heatmap. {DISCLAIMER}.")[:1024]
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = pixels.astype(np.uint8).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds
