"""`pancscan gateway`: a DICOM node at the hospital, between its PACS and PancScan's API.

The PACS (or a modality) sends a study to the gateway's AE title with C-STORE, or the gateway is told
that a study is ready and pulls it from a DICOMweb server (WADO-RS, `pancscan gateway-pull`). Each series waits in
the gateway's state folder until no image has arrived for ``settle_s`` seconds; then an axial CT
series is de-identified (pancscan_client.deidentify), zipped and submitted through the hospital API
with the batch client's code and credentials; any other series is ignored with a log line that
names no patient. A complete result comes back into the PACS, in the source study, as a DICOM
structured report and a secondary capture made here from the ORIGINAL headers (sent with C-STORE);
a rejected scan gets no report, and a log line with its reason code. Results go back with C-STORE,
or with STOW-RS to a DICOMweb server.

Everything pending lives on disk, so a restart loses nothing:

    <state>/incoming/<series>/  the images as received (they never leave the hospital)
    <state>/outbox/<series>/    the report and capture until the PACS has taken them
    <state>/done/<series>.json  what became of a series (a series sent again is not submitted again)
    <state>/secret              the key of the UIDs made during de-identification (0600)

``<series>`` is a keyed hash of the Series Instance UID: no file name or log line carries a UID,
name or ID of a patient.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import re
import secrets
import shutil
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pydicom
import requests
from pydicom.dataset import Dataset

from pancscan.reading.dicom import dicom_slice
from pancscan_client.deidentify import deidentified
from pancscan_client.secondary_capture import can_capture, secondary_capture
from pancscan_client.submit import FINAL, ClientRefused, Scan
from pancscan_client.structured_report import can_report, structured_report

log = logging.getLogger("pancscan.gateway")

Submit = Callable[[bytes], dict]  # a series zip -> the API's final result
Send = Callable[[list[Path]], None]  # DICOM files -> the PACS; raises when it could not
MAX_BACKOFF_S = 3600.0


@dataclass(frozen=True)
class Destination:
    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> "Destination":
        """AE@HOST:PORT, as in `--pacs ORTHANC@pacs.example:4242` (an AE title may hold "@", a host
        name may not; an IPv6 address holds ":")."""
        ae_title, _, address = text.rpartition("@")
        host, _, port = address.rpartition(":")
        if not (ae_title and host and port.isdigit()):
            raise ValueError("a DICOM destination is AE_TITLE@HOST:PORT")
        return cls(ae_title, host, int(port))


def why_ignored(headers: list[Dataset], min_slices: int) -> str | None:
    """Why a series is not one PancScan reads (a reason code), or None when it is: axial CT images,
    not a localizer, at least ``min_slices`` of them."""
    items = [dicom_slice(ds, None) for ds in headers]
    if any(item.modality != "CT" for item in items):
        return "not_ct"
    if any("LOCALIZER" in (ds.get("ImageType") or []) for ds in headers):
        return "localizer"
    if not all(item.axial for item in items):
        return "not_axial"
    if len(items) < min_slices:
        return "too_few_slices"
    return None


def in_series_order(datasets: list[Dataset]) -> list[Dataset]:
    """Inferior to superior, as PancScan orders a series: its slice indices then name these."""
    return sorted(datasets, key=lambda ds: dicom_slice(ds, None).position)


class Gateway:
    def __init__(self, state: Path, submit: Submit | None = None, send: Send | None = None, *, settle_s: float = 10.0,
                 min_slices: int = 1, retry_s: float = 30.0):
        """``submit`` and ``send`` may be left out where images are only received (`pancscan gateway-pull`)."""
        self.state, self.submit, self.send = Path(state), submit, send
        self.settle_s, self.min_slices, self.retry_s = settle_s, min_slices, retry_s
        for folder in ("incoming", "outbox", "done"):
            (self.state / folder).mkdir(parents=True, exist_ok=True)
        self.secret = self._secret()

    def _secret(self) -> bytes:
        path = self.state / "secret"
        if not path.exists():
            path.write_bytes(secrets.token_bytes(32))
            path.chmod(0o600)
        return path.read_bytes()

    def series_key(self, series_uid: str) -> str:
        return hmac.new(self.secret, series_uid.encode(), hashlib.sha256).hexdigest()[:24]

    # --- in: what the PACS sends -----------------------------------------------------------------

    def receive(self, ds: Dataset) -> None:
        """Keep one received image (C-STORE) with its series, as it came."""
        folder = self.state / "incoming" / self.series_key(str(ds.SeriesInstanceUID))
        folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(str(ds.SOPInstanceUID).encode()).hexdigest()[:24]
        partial = folder / f"{name}.part"
        ds.save_as(partial, enforce_file_format=True)
        partial.replace(folder / f"{name}.dcm")  # whole files only, even if the gateway stops meanwhile

    def settled(self, now: float) -> list[str]:
        """Series to which nothing has been added for ``settle_s`` seconds, and whose retry time has come."""
        keys = []
        for folder in sorted((self.state / "incoming").iterdir()):
            images = list(folder.glob("*.dcm"))
            if images and now - max(p.stat().st_mtime for p in images) >= self.settle_s and self._due(folder, now):
                keys.append(folder.name)
        return keys

    # --- to PancScan and back --------------------------------------------------------------------

    def step(self, now: float | None = None) -> None:
        """One round: every settled series processed, then the outbox sent. Raises ClientRefused."""
        now = time.time() if now is None else now
        for key in self.settled(now):
            self._process(key, now)
        for folder in sorted((self.state / "outbox").iterdir()):
            if self._due(folder, now):
                self._deliver(folder, now)

    def _process(self, key: str, now: float) -> None:
        incoming = self.state / "incoming" / key
        done = self.state / "done" / f"{key}.json"
        if done.exists():
            log.info("series %s: already submitted; the images sent again are dropped", key)
            shutil.rmtree(incoming)
            return
        datasets = in_series_order([pydicom.dcmread(path) for path in sorted(incoming.glob("*.dcm"))])
        reason = why_ignored(datasets, self.min_slices)
        if reason:
            self._finish(key, {"status": "ignored", "reason": reason})
            log.info("series %s: ignored (%s)", key, reason)
            return
        try:
            result = self.submit(self._zip(datasets))
        except ClientRefused:
            raise
        except Exception as error:  # the API is down or failing: the series stays and is tried again
            self._retry_later(incoming, now)
            log.warning("series %s: not submitted (%s); kept, tried again later", key, type(error).__name__)
            return
        if result.get("status") not in FINAL:  # no result in time (timed_out): kept and submitted again later
            self._retry_later(incoming, now)
            log.warning("series %s: no result in time; kept, tried again later", key)
            return
        if result.get("status") == "complete":
            self._write_outbox(key, result, datasets)
        self._finish(key, {"status": result.get("status"), "scan_id": result.get("scan_id"),
                           "reason": (result.get("reason") or {}).get("code")})
        log.info("series %s: %s%s", key, result.get("status"),
                 f" ({(result.get('reason') or {}).get('code')})" if result.get("status") != "complete" else "")

    def _zip(self, datasets: list[Dataset]) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for k, ds in enumerate(datasets):  # in series order: PancScan's slice k is datasets[k]
                copy = io.BytesIO()
                deidentified(ds, self.secret).save_as(copy, enforce_file_format=True)
                archive.writestr(f"IM{k:04d}.dcm", copy.getvalue())
        return buffer.getvalue()

    def _write_outbox(self, key: str, result: dict, datasets: list[Dataset]) -> None:
        series = result.get("series") or {}
        source = datasets[series.get("most_suspicious_slice", 0)]
        folder = self.state / "outbox" / key
        folder.mkdir(parents=True, exist_ok=True)
        header = Dataset({tag: element for tag, element in source.items() if tag != 0x7FE00010})  # no pixels
        if can_report(result):
            structured_report(result, header).save_as(folder / "report.dcm", enforce_file_format=True)
        if can_capture(result):
            secondary_capture(result, header).save_as(folder / "capture.dcm", enforce_file_format=True)

    def _finish(self, key: str, record: dict) -> None:
        (self.state / "done" / f"{key}.json").write_text(json.dumps(record))
        shutil.rmtree(self.state / "incoming" / key)

    def _deliver(self, folder: Path, now: float) -> None:
        files = sorted(folder.glob("*.dcm"))
        try:
            self.send(files)
        except Exception as error:  # the PACS is down: kept on disk, tried again with backoff
            self._retry_later(folder, now)
            log.warning("series %s: results not delivered (%s); kept, tried again later", folder.name, type(error).__name__)
            return
        shutil.rmtree(folder)
        log.info("series %s: %d result objects delivered to the PACS", folder.name, len(files))

    # --- retries, kept on disk -------------------------------------------------------------------

    def _due(self, folder: Path, now: float) -> bool:
        retry = folder / "retry.json"
        return not retry.exists() or json.loads(retry.read_text())["next"] <= now

    def _retry_later(self, folder: Path, now: float) -> None:
        retry = folder / "retry.json"
        attempts = json.loads(retry.read_text())["attempts"] + 1 if retry.exists() else 1
        wait = min(MAX_BACKOFF_S, self.retry_s * 2 ** (attempts - 1))
        retry.write_text(json.dumps({"attempts": attempts, "next": now + wait}))


def api_submitter(client, poll_s: float = 2.0) -> Submit:
    """The batch client's submission (pancscan_client.submit.Client); it raises ClientRefused itself."""

    def submit(data: bytes) -> dict:
        return client.submit(Scan(Path("series.zip"), data, "scan.zip", "application/zip"), poll_s)

    return submit


def dicom_sender(destination: Destination, calling_ae: str) -> Send:
    """C-STORE of result objects to the PACS (pynetdicom); raises unless every one was stored."""
    from pynetdicom import AE
    from pynetdicom.sop_class import ComprehensiveSRStorage, Comprehensive3DSRStorage, SecondaryCaptureImageStorage

    def send(files: list[Path]) -> None:
        ae = AE(ae_title=calling_ae)
        for context in (Comprehensive3DSRStorage, ComprehensiveSRStorage, SecondaryCaptureImageStorage):
            ae.add_requested_context(context)
        association = ae.associate(destination.host, destination.port, ae_title=destination.ae_title)
        if not association.is_established:
            raise ConnectionError("the PACS did not accept the association")
        try:
            for path in files:
                status = association.send_c_store(pydicom.dcmread(path))
                if not status or status.Status != 0x0000:
                    raise ConnectionError("the PACS did not store a result object")
        finally:
            association.release()

    return send


def dicomweb_sender(root: str) -> Send:
    """STOW-RS of result objects to a DICOMweb server; raises unless it stored every one."""

    def send(files: list[Path]) -> None:
        boundary = secrets.token_hex(16).encode()
        body = b"".join(b"--" + boundary + b"\r\nContent-Type: application/dicom\r\n\r\n" + path.read_bytes() + b"\r\n"
                        for path in files) + b"--" + boundary + b"--\r\n"
        response = requests.post(f"{root.rstrip('/')}/studies", data=body, timeout=120, headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary.decode()}',
            "Accept": "application/dicom+json"})
        failed = (response.json() if response.content else {}).get("00081198", {}).get("Value")  # Failed SOP Sequence
        if not response.ok or failed:
            raise ConnectionError(f"STOW-RS answered {response.status_code}")

    return send


def dicomweb_study(root: str, study_uid: str) -> list[Dataset]:
    """Every instance of a study from a DICOMweb server (WADO-RS), as the PACS holds them."""
    response = requests.get(f"{root.rstrip('/')}/studies/{study_uid}", timeout=600,
                            headers={"Accept": 'multipart/related; type="application/dicom"'})
    response.raise_for_status()
    return [pydicom.dcmread(io.BytesIO(part)) for part in multipart_parts(response.headers["Content-Type"], response.content)]


def multipart_parts(content_type: str, body: bytes) -> list[bytes]:
    """The bodies of a multipart/related message (RFC 2387), as WADO-RS answers."""
    found = re.search(r'boundary="?([^";]+)"?', content_type)
    if found is None:
        raise ValueError("a multipart answer without a boundary")
    parts = []
    for chunk in body.split(b"--" + found.group(1).encode())[1:]:
        if chunk.startswith(b"--"):  # the closing delimiter
            break
        _, _, data = chunk.partition(b"\r\n\r\n")
        parts.append(data[:-2] if data.endswith(b"\r\n") else data)
    return parts


def serve(gateway: Gateway, ae_title: str, host: str, port: int, stop: Callable[[], bool], poll_s: float = 1.0) -> None:
    """Accept C-STORE on ``ae_title`` at host:port and process what settles, until ``stop()``."""
    from pynetdicom import AE, AllStoragePresentationContexts, evt

    def on_store(event) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        gateway.receive(ds)
        return 0x0000

    ae = AE(ae_title=ae_title)
    ae.supported_contexts = AllStoragePresentationContexts  # every series is taken; what is not axial CT is ignored later
    server = ae.start_server((host, port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    log.info("gateway %s listening on %s:%d", ae_title, host, port)
    try:
        while not stop():
            gateway.step()
            time.sleep(poll_s)
    finally:
        server.shutdown()


def credentials_from(environ: dict, file: str | None) -> tuple[str, str]:
    """The client id and secret: from a JSON file ({"client_id", "client_secret"}), or else from
    PANCSCAN_CLIENT_ID and PANCSCAN_CLIENT_SECRET; never from the command line."""
    if file:
        given = json.loads(Path(file).read_text())
        return given["client_id"], given["client_secret"]
    if not (environ.get("PANCSCAN_CLIENT_ID") and environ.get("PANCSCAN_CLIENT_SECRET")):
        raise SystemExit("pancscan gateway: set PANCSCAN_CLIENT_ID and PANCSCAN_CLIENT_SECRET, or give --credentials FILE")
    return environ["PANCSCAN_CLIENT_ID"], environ["PANCSCAN_CLIENT_SECRET"]
