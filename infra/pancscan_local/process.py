"""`pancscan serve` in a child process on free ports: for end-to-end tests, benchmarks and load."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServedStack:
    url: str
    aws_endpoint: str
    process: subprocess.Popen


@contextmanager
def served_stack(log_path: Path | None = None, env: dict[str, str] | None = None, start_timeout: float = 60,
                 options: tuple[str, ...] = ()) -> Iterator[ServedStack]:
    """Start the stack, wait until /v1/health answers, yield it; stop it with SIGINT (Ctrl-C).

    Raises RuntimeError if it does not start, and if it does not stop cleanly (exit status 0)."""
    port, s3_port = free_port(), free_port()
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | (env or {})
    command = [str(Path(sys.executable).parent / "pancscan"), "serve", "--port", str(port), "--s3-port", str(s3_port), *options]
    out = log_path.open("w") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=child_env)
    stack = ServedStack(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{s3_port}", process)
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                if requests.get(stack.url + "/v1/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("pancscan serve did not start" + (f"; see {log_path}" if log_path else ""))
            time.sleep(0.2)
        yield stack
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
        if log_path:
            out.close()
    if code != 0:
        raise RuntimeError(f"pancscan serve stopped with exit status {code}")
