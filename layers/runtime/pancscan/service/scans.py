"""Scans as the API and the inference function see them: plain types and pure rules, no AWS.

A scan is created by the API (status ``pending``) with a random id and a result token; only the
token's SHA-256 is kept. The upload lands at ``uploads/<scan_id>``; the inference function moves
the scan to ``processing`` (a duplicate event finds it claimed; a retry after the claimer died
takes it over once the claim's lease has run out) and then to a final status.
The uploader's file name is never stored: file names of medical images often carry patient names.

Who may read a scan: whoever holds its token (the public browser flow), or, when the API runs with
the hospitals' JWT authorizer, the app client that created it (its ``owner``) and no one else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Protocol

from pancscan.outputs import slice_sheets

UPLOAD_PREFIX = "uploads/"
RESULTS_PREFIX = "results/"  # a series' slice sheets: results/<scan_id>/<name>, expiring with the result
PENDING, PROCESSING, COMPLETE, REJECTED, FAILED = "pending", "processing", "complete", "rejected", "failed"
FINAL_STATUSES = (COMPLETE, REJECTED, FAILED)
CLAIMED, BUSY, GONE = "claimed", "busy", "gone"  # what a claim finds
# Content types the API accepts. File names are not checked against them (DICOM files often have
# no extension): the inference function reads the content's signature and ignores both.
CONTENT_TYPES = ("image/png", "image/jpeg", "application/dicom", "application/zip", "application/gzip",
                 "application/octet-stream")
RESULT_FIELDS = ("label", "probability", "confidence", "threshold", "model_version", "reason", "series", "technical")
UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

# Stable codes of API request errors (distinct from the reason codes of rejected scans).
REQUEST_ERROR_CODES = {
    "invalid_request": "The request body is not what the API expects.",
    "unsupported_type": "This file type is not accepted.",
    "too_large": "The file is larger than the API accepts.",
    "not_found": "No such scan, or the token does not match.",
    "not_ready": "The scan has no final result yet; ask again later.",
    "method_not_allowed": "The route exists but not with this method.",
    "unauthorized": "This deployment accepts hospital clients only: send an access token.",
}


class InvalidRequest(Exception):
    def __init__(self, code: str, message: str):
        assert code in REQUEST_ERROR_CODES, code
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class UploadRequest:
    filename: str
    content_type: str
    size: int


@dataclass
class ScanRecord:
    """One scan as stored. ``expires_at`` (epoch seconds) is the table's TTL attribute."""

    scan_id: str
    token_hash: str
    status: str
    created_at: int
    expires_at: int
    content_type: str
    size: int
    result: dict = field(default_factory=dict)  # RESULT_FIELDS once known
    heatmap_png: bytes | None = None
    slice_png: bytes | None = None  # the slice the heatmap belongs to, for inputs a browser cannot show (DICOM, NIfTI)
    owner: str | None = None  # the hospital's app client id (JWT authorizer on); None in the public flow


class ScanStore(Protocol):
    def create(self, record: ScanRecord) -> None: ...
    def get(self, scan_id: str) -> ScanRecord | None: ...
    def delete(self, scan_id: str) -> None: ...
    def claim(self, scan_id: str, now: int, lease_seconds: int) -> str:
        """pending, or processing claimed over ``lease_seconds`` ago (its claimer died) -> processing.

        Returns CLAIMED, BUSY (another invocation holds a live claim), or GONE (unknown or final)."""
    def finish(self, scan_id: str, status: str, result: dict, pngs: dict[str, bytes], now: int) -> None:
        """The final status and result; ``pngs`` maps "heatmap_png" / "slice_png" to their bytes."""


class UploadStore(Protocol):
    def presigned_post(self, key: str, content_type: str, max_bytes: int, expires_in: int) -> dict: ...
    def read(self, key: str, max_bytes: int) -> bytes | None:
        """The object's bytes; None if it is gone. Raises ScanRejected("too_large") before
        downloading an object whose stored size is over ``max_bytes``."""
    def delete(self, key: str) -> None: ...


class SheetStore(Protocol):
    """A series' slice sheets (pancscan.outputs.slice_sheets), kept beside its result, never in the table."""
    def put(self, scan_id: str, sheets: dict[str, bytes]) -> None: ...
    def delete(self, scan_id: str) -> None:
        """Every sheet of the scan, whatever wrote it."""
    def url(self, scan_id: str, name: str, expires_in: int) -> str:
        """A GET URL that works for ``expires_in`` seconds, for whoever the API found may read the scan."""


def sheets_view(record: ScanRecord, url_of, now: int, expires_in: int) -> dict:
    """What GET /v1/scans/{id}/slices returns: where each scored slice of a series is drawn (its
    sheet, column and row) and short-lived URLs of the sheets; no slices for a single image, whose
    heatmap the scan's own view carries. ``url_of(name)`` signs one sheet's URL."""
    series = record.result.get("series") if record.status == COMPLETE else None
    indices = slice_sheets.scored_indices(series) if series else []
    sheets = []
    for sheet in range(slice_sheets.sheet_count(len(indices))):
        images, heatmaps = slice_sheets.sheet_names(sheet)
        sheets.append({"image": url_of(images), "heatmap": url_of(heatmaps)})
    return {
        "scan_id": record.scan_id,
        "urls_expire_at": now + expires_in,
        "columns": slice_sheets.COLUMNS,
        "image_tile_px": slice_sheets.IMAGE_TILE_PX,
        "heatmap_tile_px": slice_sheets.HEATMAP_TILE_PX,
        "slices": [{"index": index, **slice_sheets.tile_of(position)} for position, index in enumerate(indices)],
        "sheets": sheets,
    }


def validate_upload_request(request: UploadRequest, max_bytes: int) -> None:
    if request.content_type not in CONTENT_TYPES:
        raise InvalidRequest("unsupported_type", f"content_type must be one of {', '.join(CONTENT_TYPES)}")
    if request.size > max_bytes:
        raise InvalidRequest("too_large", f"size must be at most {max_bytes} bytes")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(record: ScanRecord, token: str | None) -> bool:
    """Constant-time comparison of the token's hash with the stored one."""
    return hmac.compare_digest(record.token_hash, hash_token(token or ""))


def upload_key(scan_id: str) -> str:
    return UPLOAD_PREFIX + scan_id


def scan_id_from_key(key: str) -> str | None:
    """The scan id of an upload key (already URL-decoded), or None for anything we did not issue."""
    if not key.startswith(UPLOAD_PREFIX):
        return None
    scan_id = key[len(UPLOAD_PREFIX) :]
    return scan_id if UUID_PATTERN.match(scan_id) else None


def new_scan(request: UploadRequest, now: int, ttl_seconds: int, owner: str | None = None) -> tuple[ScanRecord, str]:
    """A pending record and the token that reads it (returned once, never stored)."""
    token = secrets.token_urlsafe(32)
    record = ScanRecord(
        scan_id=str(uuid.uuid4()),
        token_hash=hash_token(token),
        status=PENDING,
        created_at=now,
        expires_at=now + ttl_seconds,
        content_type=request.content_type,
        size=request.size,
        owner=owner,
    )
    return record, token


def readable(record: ScanRecord | None, token: str | None, now: int, client: str | None = None) -> bool:
    """Whether the caller may see ``record``: it exists, has not expired (DynamoDB deletes expired
    items only eventually), and the caller is its owner (a hospital client) or, for a scan without
    owner, holds its token."""
    if record is None or record.expires_at <= now:
        return False
    if record.owner is not None:
        return client == record.owner
    return token_matches(record, token)


def public_view(record: ScanRecord) -> dict:
    """What GET /v1/scans/{id} returns: status, result fields once known; never the token hash."""
    view = {"scan_id": record.scan_id, "status": record.status, "created_at": record.created_at,
            "expires_at": record.expires_at}
    view |= {name: record.result.get(name) for name in RESULT_FIELDS}
    # The lesion heatmap over the whole input image: a small greyscale PNG, 0..255 = probability 0..1.
    view["heatmap"] = _png(record.heatmap_png)
    # For DICOM and NIfTI: the 256x256 slice (as the model saw it) that the heatmap belongs to.
    view["slice_image"] = _png(record.slice_png)
    return view


def _png(data: bytes | None) -> dict | None:
    return None if data is None else {"media_type": "image/png", "data": base64.b64encode(data).decode()}
