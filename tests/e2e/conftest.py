"""The local stack, started as a user starts it (`pancscan serve`), on ports the system chooses."""

import time
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from pancscan_local.process import served_stack


MAX_UPLOAD_BYTES = 40 * 1024 * 1024  # a 300-slice series zip of 512 x 512 slices is about 30 MB


@dataclass
class RunningStack:
    url: str
    aws_endpoint: str
    log: Path

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.aws_endpoint, region_name="us-east-1",
                            aws_access_key_id="local", aws_secret_access_key="local")

    def log_about(self, scan_id: str) -> str:
        """The stack's output once it holds the inference handler's line about this scan: a check for
        what must never be logged reads nothing unless the handlers' output is really there."""
        deadline = time.monotonic() + 10
        while True:
            text = self.log.read_text()
            if any(scan_id in line and "upload processed" in line for line in text.splitlines()):
                return text
            assert time.monotonic() < deadline, f"the inference handler's line about scan {scan_id} is not in the stack's output"
            time.sleep(0.1)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory, nih_dir):
    log = tmp_path_factory.mktemp("stack") / "serve.log"
    # a small upload limit, so the page's size check can be tried; Ctrl-C must stop it cleanly
    with served_stack(log, env={"MAX_UPLOAD_BYTES": str(MAX_UPLOAD_BYTES)}) as served:
        yield RunningStack(served.url, served.aws_endpoint, log)
