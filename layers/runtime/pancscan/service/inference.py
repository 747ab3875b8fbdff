"""What the inference function does with one uploaded object, over store interfaces (no AWS here).

Order matters: claim the scan (a duplicate event stops here), read the object, delete it whatever
happens next, check it again (S3's policy conditions are the first line, not the only one), score
it, store a series' slice sheets, record the result.

Retries: an error before the read (throttling on the claim, say) leaves the object in place, and
Lambda's async retry processes it. If an invocation dies after claiming (a timeout), the claim's
lease (the function's timeout) runs out and the retry takes over: it scores the object if it is
still there, and records ``failed`` if it is gone. Either way the scan ends with one final record
(and, with research retention on, one de-identified research entry).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

from pancscan.detection.predict import ScanResult
from pancscan.errors import FAILURE_CODES, ScanRejected
from pancscan.outputs.slice_sheets import slice_sheets
from pancscan.service.research import ResearchStore, research_entry
from pancscan.service.scans import BUSY, FAILED, GONE, REJECTED, ScanStore, SheetStore, UploadStore, scan_id_from_key

Scorer = Callable[[bytes], ScanResult]


@dataclass(frozen=True)
class Outcome:
    scan_id: str | None
    status: str  # a final status, or "ignored" (not ours / a duplicate)
    reason_code: str | None = None


def grey_png(values: np.ndarray) -> bytes:
    """A map of values in 0..1 (lesion probability, or a model input) as a small greyscale PNG."""
    grey = (np.clip(np.asarray(values, np.float32), 0, 1) * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def result_pngs(scored: ScanResult) -> dict[str, bytes]:
    """The heatmap; and the slice it belongs to where the browser cannot show the upload itself."""
    pngs = {}
    if scored.heatmap is not None:
        pngs["heatmap_png"] = grey_png(scored.heatmap)
        if scored.image is not None and (scored.technical or {}).get("format") not in ("png", "jpeg"):
            pngs["slice_png"] = grey_png(scored.image)
    return pngs


@dataclass(frozen=True)
class Retention:
    """Research retention (off unless configured): where de-identified results go, for how long."""

    store: ResearchStore
    days: int


class UploadMissing(Exception):
    pass


class ProcessingError(Exception):
    """An unexpected failure while scoring, named by type only."""


def take_upload(key: str, uploads: UploadStore, max_bytes: int) -> bytes:
    """Read the object and delete it, whatever the read gave. Raises ScanRejected or UploadMissing."""
    try:
        data = uploads.read(key, max_bytes)
    finally:
        uploads.delete(key)
    if data is None:
        raise UploadMissing(key)
    if len(data) > max_bytes:  # the adapter checks the declared length; this checks what arrived
        raise ScanRejected("too_large", f"The file is larger than {max_bytes} bytes.")
    return data


def process_upload(key: str, uploads: UploadStore, scans: ScanStore, score: Scorer, *, max_bytes: int, now: int,
                   lease_seconds: int = 60, retention: Retention | None = None, sheets: SheetStore | None = None) -> Outcome:
    """Handle one ObjectCreated record's (URL-decoded) key. Unexpected errors are recorded as
    ``failed`` and then raised, so that they count as function errors. A series' slice sheets go to
    ``sheets`` before its result is recorded, and are removed if that fails (the scan was deleted
    meanwhile): nothing of a deleted scan stays behind."""
    scan_id = scan_id_from_key(key)
    claim = scans.claim(scan_id, now, lease_seconds) if scan_id else GONE
    if claim == BUSY:
        return Outcome(scan_id, "ignored")  # the claimer reads and deletes the object
    if claim == GONE:
        uploads.delete(key)  # unknown, or already final: nothing will score it
        return Outcome(scan_id, "ignored")

    def record(status: str, result: dict, pngs: dict[str, bytes] | None = None, code: str | None = None,
               sheet_objects: dict[str, bytes] | None = None) -> Outcome:
        if sheet_objects:
            sheets.put(scan_id, sheet_objects)
        try:
            scans.finish(scan_id, status, result, pngs or {}, now)
        except BaseException:
            if sheet_objects:
                sheets.delete(scan_id)
            raise
        if retention:
            retention.store.keep(research_entry(scan_id, status, result, now), now + retention.days * 86400)
        return Outcome(scan_id, status, code)

    try:
        scored = score(take_upload(key, uploads, max_bytes))
    except ScanRejected as reason:
        return record(REJECTED, {"reason": reason.as_dict()}, code=reason.code)
    except UploadMissing:
        return record(FAILED, _failure("upload_missing"), code="upload_missing")
    except Exception as error:
        record(FAILED, _failure("processing_error"))
        # Only the error's type reaches the logs: messages of parsers can quote header values.
        raise ProcessingError(type(error).__name__) from None
    result = {name: value for name, value in scored.as_dict().items() if name != "status"}
    objects = slice_sheets(scored.scored_slices) if sheets is not None and scored.scored_slices else None
    return record(scored.status, result, result_pngs(scored), scored.reason.code if scored.reason else None, objects)


def _failure(code: str) -> dict:
    return {"reason": {"code": code, "message": FAILURE_CODES[code]}}
