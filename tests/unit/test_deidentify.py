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


def test_the_copy_says_how_it_was_de_identified_in_the_profiles_own_terms():
    copy = deidentified(source(), SECRET)
    assert (copy.PatientIdentityRemoved, copy.DeidentificationMethod) == ("YES", "PS3.15 Annex E basic profile, as a keep-list")
    (method,) = copy.DeidentificationMethodCodeSequence
    assert (method.CodeValue, method.CodingSchemeDesignator, method.CodeMeaning) == (
        "113100", "DCM", "Basic Application Confidentiality Profile")
    assert (copy.file_meta.MediaStorageSOPClassUID, copy.file_meta.MediaStorageSOPInstanceUID) == (copy.SOPClassUID, copy.SOPInstanceUID)


def test_each_uid_gets_its_own_uuid_derived_uid():
    made = {new_uid(f"1.2.3.{k}", SECRET) for k in range(100)}
    assert len(made) == 100
    assert all(uid.startswith("2.25.") and int(uid.removeprefix("2.25.")) < 2**128 for uid in made)  # PS3.5 B.2: a 128-bit UUID


def test_compressed_pixels_keep_their_transfer_syntax_and_others_become_explicit_little_endian():
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

    compressed = source()
    compressed.compress(RLELossless)
    copy = deidentified(compressed, SECRET)
    assert copy.file_meta.TransferSyntaxUID == RLELossless and copy.PixelData == compressed.PixelData
    assert np.array_equal(parse_dicom(written(copy)).pixel_array, source().pixel_array)

    implicit = source()
    implicit.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    assert deidentified(implicit, SECRET).file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    without_syntax = source()
    del without_syntax.file_meta.TransferSyntaxUID
    assert deidentified(without_syntax, SECRET).file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    without_meta = source()
    del without_meta.file_meta
    assert deidentified(without_meta, SECRET).file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
