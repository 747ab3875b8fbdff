"""De-identification at the hospital, before an image leaves it for PancScan: DICOM PS3.15 Annex E,
the Basic Application Level Confidentiality Profile, applied to a copy as a keep-list.

The profile removes or blanks every attribute that can identify a patient (names, IDs, dates,
institutions, descriptions, private tags) and replaces UIDs. PancScan needs far less than what the
profile would let through, so the copy is built from nothing: the attributes the model's reader uses
(modality, image type, pixels and their rescale, position, orientation, spacing, thickness, series
and instance numbers), the UIDs replaced, and the profile's own marks (Patient Identity Removed,
De-identification Method and its code). Every other attribute, including every private one, is left
behind; nothing is blanked, since nothing identifying is copied.

New UIDs are derived from the original and a secret kept at the gateway: the same series sent twice
gets the same new UIDs, and no one without the secret can link them back.
"""

from __future__ import annotations

import hashlib
import hmac

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

# Image Pixel, General Image, Image Plane and CT Image attributes the reader uses (pancscan.reading.dicom).
KEEP = ("SOPClassUID", "Modality", "ImageType", "Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation",
        "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "PlanarConfiguration", "NumberOfFrames",
        "RescaleSlope", "RescaleIntercept", "RescaleType", "PixelPaddingValue", "PixelPaddingRangeLimit",
        "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "SpacingBetweenSlices",
        "SeriesNumber", "InstanceNumber", "PixelData")
REPLACED_UIDS = ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID")
UID_ROOT = "2.25."  # UUID-derived UIDs (PS3.5 B.2): no organisation root needed
METHOD = "PS3.15 Annex E basic profile, as a keep-list"  # LO: 64 characters at most


def new_uid(uid: str, secret: bytes) -> str:
    """A UID of the 2.25 form derived from ``uid`` and ``secret`` (HMAC-SHA-256, 128 bits)."""
    digest = hmac.new(secret, uid.encode(), hashlib.sha256).digest()[:16]
    return UID_ROOT + str(int.from_bytes(digest, "big"))


def deidentified(source: Dataset, secret: bytes) -> Dataset:
    """A copy of ``source`` holding only what PancScan reads, its UIDs replaced; ``source`` is untouched."""
    ds = Dataset()
    for name in KEEP:
        if name in source:
            setattr(ds, name, source[name].value)
    for name in REPLACED_UIDS:
        if name in source:
            setattr(ds, name, new_uid(str(source[name].value), secret))
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD
    method = Dataset()
    method.CodeValue, method.CodingSchemeDesignator, method.CodeMeaning = "113100", "DCM", "Basic Application Confidentiality Profile"
    ds.DeidentificationMethodCodeSequence = [method]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    # the pixels as they came: compressed data keeps its transfer syntax, everything else becomes explicit little endian
    syntax = getattr(getattr(source, "file_meta", None), "TransferSyntaxUID", None)
    ds.file_meta.TransferSyntaxUID = syntax if syntax is not None and syntax.is_compressed else ExplicitVRLittleEndian
    return ds
