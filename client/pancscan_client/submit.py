"""`pancscan submit`: send a folder of scans to a PancScan API, concurrently, with retries, resumably.

Each scan is created, uploaded to its presigned form under a neutral name, and followed until it
has a final status. Results go to ``results.jsonl`` (appended as they come) and ``results.csv`` in
the output folder; a rerun skips the files whose content already has a final result there.

With ``dicom_sc``, each complete result of a DICOM scan is also written as a DICOM Secondary Capture
filed into the source study (pancscan_client.secondary_capture), its patient and study attributes copied
here from the source files.

Where the API takes hospital clients only, the client either sends a given bearer token or, with a
client id and secret, gets access tokens itself (client-credentials flow) and renews them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
import sys
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterator

import pydicom
import requests

from pancscan.reading.archive import IGNORED, zip_folder
from pancscan.reading.dicom import has_image, is_dicom
from pancscan.reading.scan_input import detect_format
from pancscan_client.secondary_capture import can_capture, secondary_capture

FINAL = ("complete", "rejected", "failed")
CSV_FIELDS = ["path", "sha256", "scan_id", "status", "label", "probability", "confidence", "threshold",
              "model_version", "reason_code", "reason_message", "slices", "most_suspicious_slice"]
RETRIED_STATUS = {429, 500, 502, 503, 504}


class ClientRefused(RuntimeError):
    """The API or its token endpoint refused this client (401, 403, invalid client): retrying will not help."""


@dataclass(frozen=True)
class Scan:
    path: Path  # a file, or a folder holding one DICOM series
    data: bytes
    filename: str  # neutral: "scan" and an extension the API accepts
    content_type: str

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


# What the API is told for each format the runtime recognises: a neutral name and a content type.
UPLOAD_AS = {
    "png": ("scan.png", "image/png"), "jpeg": ("scan.jpg", "image/jpeg"), "dicom": ("scan.dcm", "application/dicom"),
    "zip": ("scan.zip", "application/zip"), "nifti_gz": ("scan.nii.gz", "application/gzip"),
    "nifti": ("scan.nii", "application/octet-stream"),
}
MAX_FOLDER_BYTES = 512 * 1024 * 1024


def collect(paths: list[Path]) -> tuple[list[Scan], list[Path]]:
    """Scans to send, and the files skipped as not scans. A folder whose files are all DICOM is
    one series; in any other folder each file is a scan and each sub-folder a series."""
    scans, skipped = [], []

    def add_file(path: Path) -> None:
        data = path.read_bytes()
        kind = detect_format(data)
        if kind is None:
            skipped.append(path)
        else:
            scans.append(Scan(path, data, *UPLOAD_AS[kind]))

    def add_folder(folder: Path) -> None:
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        folders = sorted(p for p in folder.iterdir() if p.is_dir())
        if files and not folders and all(is_dicom(p.read_bytes()[:132]) for p in files):
            scans.append(Scan(folder, zip_folder(folder, MAX_FOLDER_BYTES), *UPLOAD_AS["zip"]))
            return
        for path in files:
            add_file(path)
        for sub in folders:
            add_folder(sub)

    for path in paths:
        add_folder(path) if path.is_dir() else add_file(path)
    return scans, skipped


def dicom_header(scan: Scan):
    """The header of the scan's first DICOM image (one file, or a series zip: DICOMDIR and objects
    without an image are passed over, as the service passes over them), read here for a capture;
    None for other formats and unreadable files."""
    try:
        for data in _dicom_candidates(scan):
            if is_dicom(data[:132]):
                header = pydicom.dcmread(io.BytesIO(data), defer_size="1 KB")  # the pixels are not decoded
                if has_image(header):
                    return header
    except Exception:  # a file we cannot read gives no capture, not a failed batch
        return None
    return None


def _dicom_candidates(scan: Scan) -> Iterator[bytes]:
    if scan.content_type != "application/zip":
        yield scan.data
        return
    with zipfile.ZipFile(io.BytesIO(scan.data)) as archive:
        for name in sorted(archive.namelist()):
            if not name.endswith("/") and not any(part in name for part in IGNORED):
                yield archive.read(name)


def write_capture(scan: Scan, result: dict, folder: Path) -> Path | None:
    """The result as a Secondary Capture in the source study, or None when there is nothing to draw
    or no DICOM source."""
    header = dicom_header(scan) if can_capture(result) else None
    if header is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{result['scan_id']}.dcm"
    secondary_capture(result, header).save_as(target, enforce_file_format=True)
    return target


def with_retries(call: Callable[[], requests.Response], retries: int, base_s: float = 0.5) -> requests.Response:
    """``call`` until it answers with a status not worth retrying; exponential backoff with jitter
    on connection errors, timeouts, 429 and 5xx."""
    for attempt in range(retries + 1):
        try:
            response = call()
            if response.status_code not in RETRIED_STATUS or attempt == retries:
                return response
        except (requests.ConnectionError, requests.Timeout):
            if attempt == retries:
                raise
        time.sleep(base_s * 2**attempt * (0.5 + random.random()))
    raise AssertionError("unreachable")


class ClientCredentials:
    """A hospital's app client: access tokens from the token endpoint, reused until a minute before
    they expire (one token serves every thread)."""

    def __init__(self, token_url: str, client_id: str, client_secret: str, retries: int = 4):
        self.token_url, self.client_id, self.client_secret, self.retries = token_url, client_id, client_secret, retries
        self._lock = threading.Lock()
        self._token, self._renew_at = "", 0.0

    def token(self) -> str:
        with self._lock:
            if time.monotonic() >= self._renew_at:
                response = with_retries(lambda: requests.post(
                    self.token_url, data={"grant_type": "client_credentials"},
                    auth=(self.client_id, self.client_secret), timeout=30), self.retries)
                answer = response.json() if response.content else {}
                if not response.ok or "access_token" not in answer:
                    raise ClientRefused(f"the token endpoint refused the client: {answer.get('error') or response.status_code}")
                self._token = answer["access_token"]
                self._renew_at = time.monotonic() + max(0, int(answer.get("expires_in", 3600)) - 60)
            return self._token


class Client:
    def __init__(self, api: str, token: str | None = None, retries: int = 4, timeout_s: float = 600,
                 credentials: ClientCredentials | None = None):
        self.api = api.rstrip("/")
        self.retries, self.timeout_s = retries, timeout_s
        self.fixed_token, self.credentials = token, credentials
        self.local = threading.local()

    @property
    def headers(self) -> dict[str, str]:
        token = self.credentials.token() if self.credentials else self.fixed_token
        return {"Authorization": f"Bearer {token}"} if token else {}

    @property
    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        return self.local.session

    def _json(self, method: str, url: str, **kwargs) -> dict:
        response = with_retries(lambda: self.session.request(method, url, timeout=60, **kwargs), self.retries)
        body = response.json() if response.content else {}
        if not response.ok:  # the API's {"error": {...}}, or the gateway's {"message"} and its www-authenticate reason
            detail = body.get("error", {}).get("message") or body.get("message") or ""
            reason = re.search(r'error_description="([^"]*)"', response.headers.get("www-authenticate", ""))
            refusal = ClientRefused if response.status_code in (401, 403) else RuntimeError
            raise refusal(f"HTTP {response.status_code} {detail}" + (f": {reason.group(1)}" if reason else ""))
        return body

    def submit(self, scan: Scan, poll_s: float = 1.0) -> dict:
        created = self._json("POST", f"{self.api}/v1/scans", headers=self.headers,
                             json={"filename": scan.filename, "content_type": scan.content_type, "size": len(scan.data)})
        form = created["upload"]
        upload = with_retries(lambda: self.session.post(form["url"], data=form["fields"], timeout=300,
                                                        files={"file": ("scan", scan.data, scan.content_type)}), self.retries)
        if not upload.ok:
            raise RuntimeError(f"upload refused: HTTP {upload.status_code}")
        headers = self.headers | {"X-Scan-Token": created["result_token"]}
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            result = self._json("GET", f"{self.api}/v1/scans/{created['scan_id']}", headers=headers)
            if result["status"] in FINAL:
                return result
            time.sleep(poll_s)
        return {"scan_id": created["scan_id"], "status": "timed_out"}


def row(scan: Scan, result: dict) -> dict:
    series = result.get("series") or {}
    return {"path": str(scan.path), "sha256": scan.sha256, "scan_id": result.get("scan_id"), "status": result.get("status"),
            "label": result.get("label"), "probability": result.get("probability"), "confidence": result.get("confidence"),
            "threshold": result.get("threshold"), "model_version": result.get("model_version"),
            "reason_code": (result.get("reason") or {}).get("code"), "reason_message": (result.get("reason") or {}).get("message"),
            "slices": series.get("slices"),
            "most_suspicious_slice": series.get("most_suspicious_slice")}


def load_done(results: Path) -> set[str]:
    """Content hashes that already have a final result (what makes a rerun resume)."""
    if not results.exists():
        return set()
    done = set()
    for line in results.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by an interrupted run
        if record.get("status") in FINAL:
            done.add(record["sha256"])
    return done


def write_csv(results: Path, csv_path: Path) -> None:
    latest: dict[str, dict] = {}
    for line in results.read_text().splitlines():
        try:
            record = json.loads(line)
            latest[record["path"]] = record
        except (ValueError, KeyError):
            continue
    with csv_path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(latest.values())


def run(paths: list[Path], api: str, out: Path, *, token: str | None = None, credentials: ClientCredentials | None = None,
        concurrency: int = 4, retries: int = 4, poll_s: float = 1.0, dicom_sc: Path | None = None,
        progress=None) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    scans, skipped = collect(paths)
    done = load_done(results_path)
    todo = [s for s in scans if s.sha256 not in done]
    counts = {"skipped_not_a_scan": len(skipped), "already_done": len(scans) - len(todo)}
    progress = progress or sys.stderr  # looked up now: the stream may have been replaced since import
    if credentials:
        credentials.token()  # a refused client stops here, once, not on every scan
    client = Client(api, token, retries, credentials=credentials)
    lock = threading.Lock()
    with ThreadPoolExecutor(max(1, concurrency)) as pool, results_path.open("a") as results:
        futures = {pool.submit(client.submit, scan, poll_s): scan for scan in todo}
        for finished, future in enumerate(as_completed(futures), 1):
            scan = futures[future]
            try:
                result = future.result()
            except Exception as error:  # recorded, and retried by the next run
                result = {"status": "error", "reason": {"code": "client_error", "message": str(error)[:200]}}
            if dicom_sc and write_capture(scan, result, dicom_sc):
                counts["dicom_sc_written"] = counts.get("dicom_sc_written", 0) + 1
            with lock:
                results.write(json.dumps(row(scan, result)) + "\n")
                results.flush()
                counts[result["status"]] = counts.get(result["status"], 0) + 1
            print(f"\r[{finished}/{len(todo)}] " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v),
                  end="", file=progress, flush=True)
    print(file=progress)
    write_csv(results_path, out / "results.csv")
    return counts
