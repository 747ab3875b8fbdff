"""Faults: throttling, an invocation that dies, a store that keeps failing. Each scan still ends
with exactly one final record, and its upload does not stay in the bucket."""

import numpy as np
import pytest

from pancscan.detection.predict import ScanResult
from pancscan.service import scans
from pancscan.service.inference import ProcessingError, process_upload
from tests.fakes import InMemoryScanStore, InMemoryUploadStore

LEASE = 60


class Throttled(Exception):
    """Stands in for DynamoDB's ProvisionedThroughputExceeded after boto3's own retries."""


class FlakyStore(InMemoryScanStore):
    def __init__(self, failing: dict[str, int]):
        super().__init__()
        self.failing = dict(failing)  # method -> how many calls fail

    def _maybe_fail(self, method: str):
        if self.failing.get(method, 0) > 0:
            self.failing[method] -= 1
            raise Throttled(method)

    def claim(self, *args):
        self._maybe_fail("claim")
        return super().claim(*args)

    def finish(self, *args):
        self._maybe_fail("finish")
        return super().finish(*args)


class Scorer:
    calls = 0

    def __call__(self, data):
        self.calls += 1
        return ScanResult("complete", 0.7, "t", label="no_cancer_detected", probability=0.1, confidence=0.9,
                          heatmap=np.zeros((64, 64), np.float32), image=np.zeros((256, 256), np.float32), technical={"format": "png"})


def world(store):
    bucket = InMemoryUploadStore()
    record, _ = scans.new_scan(scans.UploadRequest("a.png", "image/png", 10), now=0, ttl_seconds=10**6)
    store.create(record)
    key = scans.upload_key(record.scan_id)
    bucket.objects[key] = b"\x89PNG"
    return bucket, key, record.scan_id


def run(store, bucket, key, scorer, now):
    return process_upload(key, bucket, store, scorer, max_bytes=10_000, now=now, lease_seconds=LEASE)


def test_a_throttled_claim_fails_the_invocation_and_lambdas_retry_completes_the_scan():
    store, scorer = FlakyStore({"claim": 1}), Scorer()
    bucket, key, scan_id = world(store)
    with pytest.raises(Throttled):
        run(store, bucket, key, scorer, now=100)
    assert key in bucket.objects  # not read yet: kept for the retry
    assert run(store, bucket, key, scorer, now=160).status == "complete"  # Lambda retries after about a minute
    assert store.get(scan_id).status == "complete" and scorer.calls == 1 and bucket.objects == {}


def test_a_duplicate_during_processing_leaves_the_object_to_the_claimer():
    store, scorer = InMemoryScanStore(), Scorer()
    bucket, key, scan_id = world(store)
    assert store.claim(scan_id, 100, LEASE) == scans.CLAIMED  # an invocation is mid-way
    assert run(store, bucket, key, scorer, now=110).status == "ignored"
    assert key in bucket.objects and scorer.calls == 0


def test_a_claimer_that_died_before_reading_is_taken_over_after_its_lease():
    store, scorer = InMemoryScanStore(), Scorer()
    bucket, key, scan_id = world(store)
    store.claim(scan_id, 100, LEASE)  # ... and the invocation timed out there
    assert run(store, bucket, key, scorer, now=100 + LEASE + 1).status == "complete"
    assert store.get(scan_id).status == "complete" and bucket.objects == {}


def test_a_claimer_that_died_after_deleting_is_finished_as_failed_by_the_retry():
    store, scorer = InMemoryScanStore(), Scorer()
    bucket, key, scan_id = world(store)
    store.claim(scan_id, 100, LEASE)
    bucket.delete(key)  # read and deleted, then the invocation died before recording anything
    outcome = run(store, bucket, key, scorer, now=100 + LEASE + 1)
    assert outcome.status == "failed" and outcome.reason_code == "upload_missing"
    assert store.get(scan_id).result["reason"]["code"] == "upload_missing"


def test_a_result_that_cannot_be_recorded_is_retried_and_ends_failed_not_stuck():
    store, scorer = FlakyStore({"finish": 1}), Scorer()
    bucket, key, scan_id = world(store)
    with pytest.raises(Throttled):
        run(store, bucket, key, scorer, now=100)
    assert bucket.objects == {}  # deleted on this path too
    assert store.get(scan_id).status == "processing"
    assert run(store, bucket, key, scorer, now=130).status == "ignored"  # first retry: the lease still holds
    assert run(store, bucket, key, scorer, now=100 + LEASE + 1).status == "failed"  # the next one finishes it
    assert store.get(scan_id).status == "failed"
    assert run(store, bucket, key, scorer, now=400).status == "ignored"  # and nothing changes it again
    assert store.get(scan_id).status == "failed"


def test_a_read_that_fails_ends_failed_at_once_and_deletes_the_object():
    store, scorer = InMemoryScanStore(), Scorer()
    bucket, key, scan_id = world(store)

    def broken_read(key, max_bytes):
        raise TimeoutError("S3 read timed out")

    bucket.read = broken_read
    with pytest.raises(ProcessingError, match="^TimeoutError$"):
        run(store, bucket, key, scorer, now=100)
    assert store.get(scan_id).status == "failed" and bucket.objects == {}
