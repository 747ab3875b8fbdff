"""`pancscan serve` in a child process on ports the system chooses: for end-to-end tests, benchmarks and load."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import requests

RUNNING_LINE = re.compile(r"^  (site|AWS stand-in \(moto\)) +(http://\S+)", re.MULTILINE)  # as `serve` prints them


@dataclass
class ServedStack:
    url: str
    aws_endpoint: str
    process: subprocess.Popen


@contextmanager
def served_stack(log_path: Path | None = None, env: dict[str, str] | None = None, start_timeout: float = 60,
                 options: tuple[str, ...] = (), stop_grace: float = 15) -> Iterator[ServedStack]:
    """Start the stack, wait until /v1/health answers, yield it; stop it with SIGINT (Ctrl-C).

    Raises RuntimeError, with the last lines of the stack's output, if it does not start, or if it
    does not stop cleanly (exit status 0) within `stop_grace` seconds (it is then killed)."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | (env or {})
    # ports 0: the stack binds ports the system chooses and prints them (no window for another process to take them)
    command = [str(Path(sys.executable).parent / "pancscan"), "serve", "--port", "0", "--s3-port", "0", *options]
    with tempfile.TemporaryDirectory() as scratch:
        log_path = log_path or Path(scratch) / "serve.log"
        with log_path.open("w") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=child_env)
        try:
            stack = _wait_until_healthy(process, start_timeout, log_path)
            yield stack
        finally:
            failure = stop(process, stop_grace)
        if failure:
            raise RuntimeError(f"pancscan serve {failure}; its last output:\n{_tail(log_path)}")


def stop(process: subprocess.Popen, grace: float) -> str | None:
    """SIGINT, then SIGKILL after `grace` seconds; None if it stopped by itself with status 0."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        code = process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return f"did not stop within {grace:g} s of SIGINT and was killed"
    return None if code == 0 else f"stopped with exit status {code}"


def _wait_until_healthy(process: subprocess.Popen, timeout: float, log_path: Path) -> ServedStack:
    """The stack's addresses, read from its own output once it is running, after /v1/health answers."""
    deadline = time.monotonic() + timeout
    while True:
        addresses = dict(RUNNING_LINE.findall(log_path.read_text(errors="replace")))
        if {"site", "AWS stand-in (moto)"} <= addresses.keys():
            stack = ServedStack(addresses["site"].rstrip("/"), addresses["AWS stand-in (moto)"], process)
            try:
                if requests.get(stack.url + "/v1/health", timeout=5).ok:
                    return stack
            except requests.RequestException:
                pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"pancscan serve did not start; its last output:\n{_tail(log_path)}")
        time.sleep(0.2)


def _tail(log_path: Path, lines: int = 30) -> str:
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
