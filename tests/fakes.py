"""In-memory stand-ins for the scan table and the upload bucket, for unit tests only."""

from __future__ import annotations

import copy

from pancscan.errors import ScanRejected
from pancscan.service.scans import BUSY, CLAIMED, FINAL_STATUSES, GONE, PROCESSING, ScanRecord


class InMemoryScanStore:
    def __init__(self):
        self.records: dict[str, ScanRecord] = {}
        self.claimed_at: dict[str, int] = {}

    def create(self, record: ScanRecord) -> None:
        assert record.scan_id not in self.records
        self.records[record.scan_id] = copy.deepcopy(record)

    def get(self, scan_id: str) -> ScanRecord | None:
        return copy.deepcopy(self.records.get(scan_id))

    def delete(self, scan_id: str) -> None:
        self.records.pop(scan_id, None)

    def claim(self, scan_id: str, now: int, lease_seconds: int) -> str:
        record = self.records.get(scan_id)
        if record is None or record.status in FINAL_STATUSES:
            return GONE
        if record.status == PROCESSING and self.claimed_at[scan_id] >= now - lease_seconds:
            return BUSY
        record.status = PROCESSING
        self.claimed_at[scan_id] = now
        return CLAIMED

    def finish(self, scan_id, status, result, pngs, now) -> None:
        record = self.records[scan_id]
        assert record.status == PROCESSING
        record.status, record.result = status, result
        record.heatmap_png, record.slice_png = pngs.get("heatmap_png"), pngs.get("slice_png")


class InMemoryUploadStore:
    def __init__(self):
        self.objects: dict[str, bytes] = {}
        self.deleted: list[str] = []

    def presigned_post(self, key, content_type, max_bytes, expires_in) -> dict:
        return {"url": "https://uploads.example", "fields": {"key": key, "Content-Type": content_type}}

    def read(self, key: str, max_bytes: int) -> bytes | None:
        data = self.objects.get(key)
        if data is not None and len(data) > max_bytes:
            raise ScanRejected("too_large", "too large")
        return data

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)
        self.deleted.append(key)


class InMemoryResearchStore:
    def __init__(self):
        self.kept: dict[str, tuple[dict, int]] = {}

    def keep(self, entry: dict, expires_at: int) -> None:
        self.kept[entry["scan_id"]] = (copy.deepcopy(entry), expires_at)

    def forget(self, scan_id: str) -> None:
        self.kept.pop(scan_id, None)

    def entries(self):
        return [entry for entry, _ in self.kept.values()]


class InMemorySheetStore:
    def __init__(self):
        self.objects: dict[str, dict[str, bytes]] = {}  # scan id -> name -> bytes

    def put(self, scan_id: str, sheets: dict[str, bytes]) -> None:
        self.objects.setdefault(scan_id, {}).update(sheets)

    def delete(self, scan_id: str) -> None:
        self.objects.pop(scan_id, None)

    def url(self, scan_id: str, name: str, expires_in: int) -> str:
        return f"https://sheets.example/{scan_id}/{name}?expires_in={expires_in}"
