"""De-identification at the hospital (PS3.15 Annex E basic profile as a keep-list): nothing that
identifies the patient leaves, the UIDs are replaced consistently, and PancScan reads the copy as
it reads the original."""

import io

import numpy as np
import pydicom

from pancscan.reading.dicom import dicom_slice, parse_dicom
from pancscan_client.deidentify import deidentified, new_uid
from tests.dicom_factory import PHI_STRINGS, ct_dataset, to_bytes

SECRET = b"gateway-secret"


def source() -> pydicom.Dataset:
    hu = np.arange(16, dtype=np.float32).reshape(4, 4) * 20 - 100
    return pydicom.dcmread(io.BytesIO(to_bytes(ct_dataset(hu, z=12.5))))


def written(ds) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_no_identifier_private_tag_date_or_original_uid_leaves():
    original = source()
    data = written(deidentified(original, SECRET))
    for secret in PHI_STRINGS:
        assert secret.encode() not in data, secret
    copy = pydicom.dcmread(io.BytesIO(data))
    uids = {str(e.value) for e in copy.iterall() if e.VR == "UI"} | {copy.file_meta.MediaStorageSOPInstanceUID}
    for name in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert original[name].value not in uids, name
    assert not any(element.tag.is_private for element in copy)
    assert not any(element.VR in ("DA", "DT", "TM", "PN") for element in copy)
    assert copy.PatientIdentityRemoved == "YES"
    assert copy.DeidentificationMethodCodeSequence[0].CodeValue == "113100"  # Basic Application Confidentiality Profile


def test_the_original_is_left_as_it_was():
    original = source()
    before = written(original)
    deidentified(original, SECRET)
    assert written(original) == before


def test_uids_are_replaced_the_same_way_each_time_and_differently_with_another_secret():
    original = source()
    first, again, other = deidentified(original, SECRET), deidentified(original, SECRET), deidentified(original, b"another")
    assert first.SeriesInstanceUID == again.SeriesInstanceUID == new_uid(original.SeriesInstanceUID, SECRET)
    assert first.SeriesInstanceUID != other.SeriesInstanceUID
    assert first.SeriesInstanceUID.startswith("2.25.") and len(first.SeriesInstanceUID) <= 64
    assert first.file_meta.MediaStorageSOPInstanceUID == first.SOPInstanceUID


def test_pancscan_reads_the_copy_as_it_reads_the_original():
    original = source()
    read = lambda ds: dicom_slice(parse_dicom(written(ds)), lambda hu: hu)  # noqa: E731 (HU, unwindowed)
    mine, theirs = read(original), read(deidentified(original, SECRET))
    assert np.array_equal(mine.image, theirs.image)
    assert (mine.modality, mine.axial, mine.position, mine.position_known, mine.slice_thickness_mm, mine.pixel_spacing_mm) == (
        theirs.modality, theirs.axial, theirs.position, theirs.position_known, theirs.slice_thickness_mm, theirs.pixel_spacing_mm)
    assert mine.position == 12.5 and mine.series_number == theirs.series_number
