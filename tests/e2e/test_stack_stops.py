"""`pancscan serve` always stops: Ctrl-C, `kill` and a service manager's SIGTERM end it within
seconds, with exit status 0 and nothing left listening, whichever thread the kernel hands the
signal to and however busy the machine is."""

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pancscan_local.process import ServedStack, served_stack

STOP_SECONDS = 10  # a hang detector, not a speed target: a clean stop takes about 2 s here


@contextmanager
def busy_cpus():
    """Every core kept busy by another process, as on a loaded CI machine."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def thread_ids(pid: int) -> list[int]:
    return sorted(int(tid) for tid in os.listdir(f"/proc/{pid}/task"))


def signal_thread(pid: int, tid: int, signum: int) -> None:
    """tgkill(2): the signal lands on that thread, as the kernel may choose for a process-directed one."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(234, pid, tid, signum) != 0:  # 234: SYS_tgkill on x86_64
        raise OSError(ctypes.get_errno(), "tgkill")


def assert_stops_cleanly(stack: ServedStack, signum: int) -> float:
    started = time.monotonic()
    code = stack.process.wait(timeout=STOP_SECONDS)  # TimeoutExpired fails the test; served_stack then kills it
    assert code == 0, f"exit status {code} after {signal.Signals(signum).name}"
    for url in (stack.url, stack.aws_endpoint):
        parts = urlsplit(url)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((parts.hostname, parts.port), timeout=1).close()
    return time.monotonic() - started


@pytest.mark.skipif(os.uname().machine != "x86_64" or not os.path.isdir("/proc/self/task"), reason="tgkill number is x86_64 Linux's")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_handed_to_a_worker_thread_still_stops_the_stack(signum):
    with served_stack() as stack:
        pid = stack.process.pid
        workers = [tid for tid in thread_ids(pid) if tid != pid]
        assert workers, "the stack runs its servers on threads of their own"

        signal_thread(pid, workers[-1], signum)

        assert_stops_cleanly(stack, signum)


def test_the_stack_starts_and_stops_twenty_times_beside_busy_cpus():
    took = []
    with busy_cpus():
        for attempt in range(20):
            signum = (signal.SIGINT, signal.SIGTERM)[attempt % 2]
            with served_stack() as stack:
                stack.process.send_signal(signum)
                took.append(assert_stops_cleanly(stack, signum))
    print(f"stops: {min(took):.1f}-{max(took):.1f} s")


def listening_ports(pid: int) -> set[int]:
    """The TCP ports a process listens on (Linux: its socket inodes in /proc/net/tcp)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # state LISTEN
            ports.add(int(fields[1].split(":")[1], 16))
    return ports


def test_a_stop_signal_while_the_stack_is_starting_still_gives_a_clean_stop(tmp_path):
    # moto's port opens first, while the model and the gateway are still loading: Ctrl-C then
    command = [str(Path(sys.executable).parent / "pancscan"), "serve", "--port", "0", "--s3-port", "0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with (tmp_path / "serve.log").open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while not (ports := listening_ports(process.pid)):
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.01)
        assert "is running" not in (tmp_path / "serve.log").read_text()  # still starting
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, (tmp_path / "serve.log").read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    for listening in ports:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", listening), timeout=1).close()