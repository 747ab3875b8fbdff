"""What the inference function does with an uploaded object, with in-memory stores."""

import io

import numpy as np
import pytest
from PIL import Image

from pancscan.detection.predict import ScanResult
from pancscan.errors import FAILURE_CODES, ScanRejected
from pancscan.service import scans
from pancscan.service.inference import Outcome, ProcessingError, UploadMissing, grey_png, process_upload, result_pngs, take_upload
from tests.fakes import InMemoryScanStore, InMemoryUploadStore

MAX = 10_000


class CountingScorer:
    def __init__(self, result=None, error=None):
        self.calls = 0
        self.result = result or ScanResult("complete", 0.7, "test", label="no_cancer_detected", probability=0.2,
                                             confidence=0.8, heatmap=np.full((64, 64), 0.25, np.float32),
                                             image=np.zeros((256, 256), np.float32), technical={"format": "png"})
        self.error = error

    def __call__(self, data: bytes) -> ScanResult:
        self.calls += 1
        if self.error:
            raise self.error
        return self.result


@pytest.fixture
def world():
    return new_world()


def new_world():
    """A pending scan and its uploaded object: (table, bucket, key, scan id)."""
    table, bucket = InMemoryScanStore(), InMemoryUploadStore()
    record, _ = scans.new_scan(scans.UploadRequest("a.png", "image/png", 10), now=0, ttl_seconds=100)
    table.create(record)
    key = scans.upload_key(record.scan_id)
    bucket.objects[key] = b"\x89PNG fake"
    return table, bucket, key, record.scan_id


def run(world, scorer):
    table, bucket, key, _ = world
    return process_upload(key, bucket, table, scorer, max_bytes=MAX, now=1)


def test_a_scored_upload_is_recorded_complete_and_deleted(world):
    table, bucket, key, scan_id = world
    outcome = run(world, CountingScorer())
    stored = table.get(scan_id)
    assert outcome.status == stored.status == "complete"
    assert stored.result["probability"] == 0.2 and stored.result["label"] == "no_cancer_detected"
    assert Image.open(io.BytesIO(stored.heatmap_png)).size == (64, 64)
    assert key not in bucket.objects


def test_duplicate_event_writes_one_result_and_calls_the_model_once(world):
    table, bucket, key, scan_id = world
    scorer = CountingScorer()
    first = run(world, scorer)
    bucket.objects[key] = b"\x89PNG again"  # even if an object reappears under the key
    second = run(world, scorer)
    assert (first.status, second.status) == ("complete", "ignored")
    assert scorer.calls == 1
    assert key not in bucket.objects


def test_rejected_input_is_recorded_with_its_reason_and_deleted(world):
    table, bucket, key, scan_id = world
    reason = ScanRejected("not_abdominal_ct", "not CT")
    outcome = run(world, CountingScorer(ScanResult("rejected", 0.7, "test", reason=reason)))
    assert outcome.status == "rejected" and outcome.reason_code == "not_abdominal_ct"
    assert table.get(scan_id).result["reason"] == {"code": "not_abdominal_ct", "message": "not CT"}
    assert key not in bucket.objects


def test_an_object_over_the_limit_is_rejected_unread_and_deleted(world):
    table, bucket, key, scan_id = world
    bucket.objects[key] = b"x" * (MAX + 1)
    scorer = CountingScorer()
    outcome = run(world, scorer)
    assert outcome.status == "rejected" and outcome.reason_code == "too_large" and scorer.calls == 0
    assert key not in bucket.objects


class DeclaredLengthTrustingStore(InMemoryUploadStore):
    """An adapter that trusted a declared length that was wrong: it hands over whatever is there."""

    def read(self, key: str, max_bytes: int) -> bytes | None:
        return self.objects.get(key)


@pytest.mark.parametrize("size, status", [(MAX, "complete"), (MAX + 1, "rejected")])
def test_what_arrived_is_checked_against_the_limit_whatever_the_adapter_checked(size, status):
    table, _, key, scan_id = new_world()
    bucket = DeclaredLengthTrustingStore()
    bucket.objects[key] = b"x" * size
    scorer = CountingScorer()
    outcome = process_upload(key, bucket, table, scorer, max_bytes=MAX, now=1)
    assert outcome.status == status and scorer.calls == (status == "complete")
    assert outcome.reason_code == (None if status == "complete" else "too_large")
    assert key not in bucket.objects


def test_a_missing_object_ends_failed(world):
    table, bucket, key, scan_id = world
    del bucket.objects[key]
    assert run(world, CountingScorer()).reason_code == "upload_missing"
    assert table.get(scan_id).status == "failed"


def test_an_unexpected_error_is_recorded_failed_then_raised_and_the_object_is_gone(world):
    table, bucket, key, scan_id = world
    with pytest.raises(ProcessingError, match="^RuntimeError$") as caught:
        run(world, CountingScorer(error=RuntimeError("bug quoting Doe^Jane")))
    assert "Doe" not in str(caught.value) and caught.value.__cause__ is None
    stored = table.get(scan_id)
    assert stored.status == "failed" and stored.result["reason"]["code"] == "processing_error"
    assert key not in bucket.objects


def test_objects_we_did_not_issue_are_deleted_and_ignored(world):
    table, bucket, _, _ = world
    bucket.objects["uploads/not-a-scan"] = b"x"
    scorer = CountingScorer()
    outcome = process_upload("uploads/not-a-scan", bucket, table, scorer, max_bytes=MAX, now=1)
    assert outcome.status == "ignored" and scorer.calls == 0 and "uploads/not-a-scan" not in bucket.objects


def test_grey_png_keeps_the_map():
    heat = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    decoded = np.asarray(Image.open(io.BytesIO(grey_png(heat)))) / 255.0
    assert np.abs(decoded - heat).max() <= 0.5 / 255 + 1e-6


HEAT = np.array([[0.0, 0.25], [0.5, 1.0]], np.float32)
SLICE = np.array([[1.0, 0.0], [0.0, 0.5]], np.float32)


def decoded(png: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.mode == "L"
    return np.asarray(image)


# --- result PNGs ----------------------------------------------------------------------------------


def test_grey_png_clips_to_0_1_and_scales_to_0_255():
    # out-of-range values saturate at 0 and 255; they must not wrap round in uint8
    values = np.array([[-0.5, 0.0, 0.25, 0.5], [0.75, 1.0, 1.5, 3.0]], np.float32)
    assert decoded(grey_png(values)).tolist() == [[0, 0, 64, 128], [191, 255, 255, 255]]


def scored(fmt, image=SLICE):
    return ScanResult("complete", 0.7, "v", label="no_cancer_detected", probability=0.2, confidence=0.8,
                      heatmap=HEAT, image=image, technical={"format": fmt})


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_a_browser_shown_upload_gets_only_the_heatmap(fmt):
    pngs = result_pngs(scored(fmt))
    assert set(pngs) == {"heatmap_png"}
    assert decoded(pngs["heatmap_png"]).tolist() == [[0, 64], [128, 255]]


@pytest.mark.parametrize("fmt", ["dicom", "nifti"])
def test_dicom_and_nifti_also_get_the_slice_the_heatmap_belongs_to(fmt):
    pngs = result_pngs(scored(fmt))
    assert set(pngs) == {"heatmap_png", "slice_png"}
    assert decoded(pngs["slice_png"]).tolist() == [[255, 0], [0, 128]]


def test_no_slice_png_without_an_image():
    assert set(result_pngs(scored("dicom", image=None))) == {"heatmap_png"}


# --- process_upload: outcomes and records -----------------------------------------------------------


class RecordingStore(InMemoryScanStore):
    def __init__(self):
        super().__init__()
        self.claims, self.finishes = [], []

    def claim(self, scan_id, now, lease_seconds):
        self.claims.append(scan_id)
        return super().claim(scan_id, now, lease_seconds)

    def finish(self, scan_id, status, result, pngs, now):
        self.finishes.append((scan_id, status, now))
        return super().finish(scan_id, status, result, pngs, now)


def recording_world():
    table = RecordingStore()
    record, _ = scans.new_scan(scans.UploadRequest("a.dcm", "application/dicom", 10), now=0, ttl_seconds=100)
    table.create(record)
    bucket = InMemoryUploadStore()
    key = scans.upload_key(record.scan_id)
    bucket.objects[key] = b"DICM"
    return table, bucket, key, record.scan_id


def test_a_completed_scan_records_the_result_fields_without_status_at_the_time_given():
    table, bucket, key, scan_id = recording_world()
    outcome = process_upload(key, bucket, table, CountingScorer(scored("dicom")), max_bytes=MAX, now=42)
    assert outcome == Outcome(scan_id, "complete", None)
    assert table.finishes == [(scan_id, "complete", 42)]
    stored = table.get(scan_id)
    assert stored.result == {"label": "no_cancer_detected", "probability": 0.2, "confidence": 0.8, "threshold": 0.7,
                             "model_version": "v", "reason": None, "series": None, "technical": {"format": "dicom"}}
    assert decoded(stored.slice_png).tolist() == [[255, 0], [0, 128]]


@pytest.mark.parametrize("code", ["upload_missing", "processing_error"])
def test_failed_scans_record_the_reason_code_and_its_message(code):
    table, bucket, key, scan_id = new_world()
    if code == "upload_missing":
        del bucket.objects[key]
        process_upload(key, bucket, table, CountingScorer(), max_bytes=MAX, now=1)
    else:
        with pytest.raises(ProcessingError):
            process_upload(key, bucket, table, CountingScorer(error=RuntimeError()), max_bytes=MAX, now=1)
    assert table.get(scan_id).result == {"reason": {"code": code, "message": FAILURE_CODES[code]}}


def test_an_arrived_object_over_the_limit_is_rejected_with_the_limit_in_the_message():
    table, _, key, scan_id = new_world()
    bucket = DeclaredLengthTrustingStore()
    bucket.objects[key] = b"x" * (MAX + 1)
    process_upload(key, bucket, table, CountingScorer(), max_bytes=MAX, now=1)
    assert table.get(scan_id).result == {"reason": {"code": "too_large", "message": f"The file is larger than {MAX} bytes."}}


def test_a_duplicate_while_claimed_is_ignored_under_its_scan_id():
    table, bucket, key, scan_id = new_world()
    table.claim(scan_id, 0, 60)
    assert process_upload(key, bucket, table, CountingScorer(), max_bytes=MAX, now=1) == Outcome(scan_id, "ignored")


def test_a_duplicate_after_the_final_result_is_ignored_under_its_scan_id():
    table, bucket, key, scan_id = new_world()
    process_upload(key, bucket, table, CountingScorer(), max_bytes=MAX, now=1)
    bucket.objects[key] = b"again"
    assert process_upload(key, bucket, table, CountingScorer(), max_bytes=MAX, now=2) == Outcome(scan_id, "ignored")
    assert key not in bucket.objects


def test_a_key_that_is_not_ours_is_deleted_without_a_claim():
    table, bucket = RecordingStore(), InMemoryUploadStore()
    bucket.objects["uploads/not-a-scan"] = b"x"
    assert process_upload("uploads/not-a-scan", bucket, table, CountingScorer(), max_bytes=MAX, now=1) == Outcome(None, "ignored")
    assert table.claims == [] and bucket.objects == {}


def test_without_a_lease_given_a_claim_is_taken_over_after_60_seconds():
    table, bucket, key, scan_id = new_world()
    table.claim(scan_id, 100, 60)
    assert process_upload(key, bucket, table, CountingScorer(), max_bytes=MAX, now=160).status == "ignored"
    assert process_upload(key, bucket, table, CountingScorer(), max_bytes=MAX, now=161).status == "complete"


def test_take_upload_of_a_vanished_object_names_its_key_and_still_deletes_it():
    bucket = InMemoryUploadStore()
    with pytest.raises(UploadMissing) as caught:
        take_upload("uploads/gone", bucket, MAX)
    assert caught.value.args == ("uploads/gone",)
    assert bucket.deleted == ["uploads/gone"]
