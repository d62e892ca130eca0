"""A real Ray head for tests: 2 CPUs, every socket on the loopback address.

Ray binds to the host's own address unless told otherwise; with these variables in
the environment of the head and of the driver it stays on 127.0.0.1. The head runs
in its own process group and is stopped through it, never with ``ray stop`` (which
would stop every Ray instance of the machine).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}


@dataclass
class Head:
    address: str
    pid: int  # the head's process: leader of its own process group and of its setsid()

    def own_processes(self) -> list[tuple[int, str]]:
        """(pid, command line) of every process the head started, workers included (Ray puts
        each worker in a process group of its own, but they keep the head's setsid())."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.getsid(int(entry.name)) != self.pid:
                    continue
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, ProcessLookupError):
                continue
            found.append((int(entry.name), cmd.strip()))
        return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def ray_head(log: Path, num_cpus: int = 2) -> Iterator[Head]:
    """Start a head, wait until it answers, yield it, and stop it whatever happened."""
    port = _free_port()
    ray = Path(sys.executable).with_name("ray")
    command = [str(ray), "start", "--head", "--node-ip-address", "127.0.0.1"]
    command += ["--port", str(port), "--num-cpus", str(num_cpus)]
    command += ["--include-dashboard", "false", "--disable-usage-stats", "--block"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command,
            env={**os.environ, **LOOPBACK_ENV},
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=os.setsid,  # its own group, and a way to find all it starts
        )
    try:
        _wait_until_listening(proc, port, log)
        head = Head(f"127.0.0.1:{port}", proc.pid)
        yield head
    finally:
        _stop(proc)
        for pid, _ in Head("", proc.pid).own_processes():  # any worker left behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _wait_until_listening(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the Ray head exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.3)
    raise RuntimeError("the Ray head did not start within 120 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # SIGTERM to the leader first: it drains the node and stops its own processes
    # (a group-wide SIGTERM kills the GCS first and leaves it waiting 30 s for it).
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=40)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # whatever of the group is left
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


@contextlib.contextmanager
def loopback_head(log: Path) -> Iterator[Head]:
    """:func:`ray_head`, with this process's environment set for loopback first."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in LOOPBACK_ENV.items():
            mp.setenv(key, value)  # before this process imports Ray: it reads them then
        with ray_head(log) as started:
            yield started


@contextlib.contextmanager
def joined(head: Head) -> Iterator[ModuleType]:
    """This process joined to ``head`` as a driver; Ray left again afterwards."""
    import ray

    # The node address is given too, in case Ray was imported before the variables were set.
    ray.init(
        address=head.address,
        _node_ip_address="127.0.0.1",
        logging_level="warning",
        log_to_driver=False,
    )
    try:
        yield ray
    finally:
        ray.shutdown()
