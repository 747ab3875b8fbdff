"""The local stack, started as a user starts it (`pancscan serve`), on free ports."""

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import requests


MAX_UPLOAD_BYTES = 20 * 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningStack:
    url: str
    aws_endpoint: str
    process: subprocess.Popen
    log: Path

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.aws_endpoint, region_name="us-east-1",
                            aws_access_key_id="local", aws_secret_access_key="local")


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory, nih_dir):
    port, s3_port = free_port(), free_port()
    log = tmp_path_factory.mktemp("stack") / "serve.log"
    pancscan = Path(sys.executable).parent / "pancscan"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["MAX_UPLOAD_BYTES"] = str(MAX_UPLOAD_BYTES)  # small, so the page's size check can be tried
    with log.open("w") as out:
        process = subprocess.Popen([str(pancscan), "serve", "--port", str(port), "--s3-port", str(s3_port)],
                                   stdout=out, stderr=subprocess.STDOUT, env=env)
    stack = RunningStack(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{s3_port}", process, log)
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(stack.url + "/v1/health", timeout=1).ok:
                break
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("pancscan serve did not start:\n" + log.read_text()[-3000:])
        time.sleep(0.2)
    yield stack
    process.send_signal(signal.SIGINT)  # Ctrl-C
    assert process.wait(timeout=20) == 0, log.read_text()[-3000:]
