"""Debian's Orthanc (with its DICOMweb plugin) as the hospital's PACS, on ports the system chose."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.ConnectionError:
        return False


@contextlib.contextmanager
def running_orthanc(folder: Path):
    """{"url": its REST root, "dicom_port": its C-STORE port (AE title ORTHANC)} while it runs."""
    if not Path(ORTHANC).exists() or not DICOMWEB_PLUGIN.exists():
        pytest.fail("Orthanc is missing: `make test` installs Debian's orthanc and orthanc-dicomweb")
    http, dicom = free_port(), free_port()
    config = {"Name": "PancScan test PACS", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
              "HttpPort": http, "DicomPort": dicom, "DicomAet": "ORTHANC", "DicomCheckCalledAet": True, "RemoteAccessAllowed": False,
              "AuthenticationEnabled": False, "DicomModalitiesInDatabase": True,
              "Plugins": [str(DICOMWEB_PLUGIN)], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}}
    (folder / "orthanc.json").write_text(json.dumps(config))
    log = (folder / "orthanc.log").open("w")
    process = subprocess.Popen([ORTHANC, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{http}"
    try:
        wait_for(lambda: _answers(f"{url}/system"), 60, "Orthanc")
        yield {"url": url, "dicom_port": dicom}
    finally:
        process.terminate()
        process.wait(timeout=30)
