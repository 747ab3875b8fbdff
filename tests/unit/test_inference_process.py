"""What the inference function does with an uploaded object, with in-memory stores."""

import io

import numpy as np
import pytest
from PIL import Image

from pancscan.service import scans
from pancscan.errors import ScanRejected
from pancscan.service.inference import ProcessingError, grey_png, process_upload
from pancscan.detection.predict import ScanResult
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
