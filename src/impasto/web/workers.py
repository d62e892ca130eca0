"""The queue's workers: threads that each take the next job and run it with a runner of
their own, so that a stop reaches every running job.

One worker (the default) runs jobs one at a time on the server's device; an engine whose
runs happen elsewhere (Ray tasks on a cluster) is given several, and that many jobs run
at once. :meth:`Workers.stop_soon` may be called from a signal handler: it only sets
flags (see :meth:`JobRunner.stop_soon`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .job import Job
from .runner import JobRunner


class Workers:
    """``count`` threads, each calling ``loop`` with its own :class:`JobRunner`."""

    def __init__(
        self,
        count: int,
        make_runner: Callable[[], JobRunner],
        loop: Callable[[JobRunner], None],
    ) -> None:
        if count < 1:
            raise ValueError(f"a queue needs at least one worker, got {count}")
        self.runners = [make_runner() for _ in range(count)]
        self._loop = loop
        self._threads: list[threading.Thread] = []

    @property
    def count(self) -> int:
        return len(self.runners)

    @property
    def started(self) -> bool:
        return bool(self._threads)

    def start(self) -> None:
        """Start the threads (once; the caller holds the queue's lock)."""
        if self._threads:
            return
        for i, runner in enumerate(self.runners, start=1):
            name = "impasto-worker" if self.count == 1 else f"impasto-worker-{i}"
            thread = threading.Thread(target=self._loop, args=(runner,), name=name, daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop_soon(self) -> None:
        """Stop every running job after its iteration (signal-safe: flags only)."""
        for runner in self.runners:
            runner.stop_soon()

    def stop_job(self, job: Job) -> None:
        """Ask the run of ``job``, if one is running it, to stop (its cancel is set)."""
        for runner in self.runners:
            runner.stop_job(job)

    def join(self, timeout: float, hurry: Callable[[], bool]) -> bool:
        """Wait until every thread has ended, ``timeout`` at most or until ``hurry()``;
        whether they all did."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            while thread.is_alive() and not hurry() and time.monotonic() < deadline:
                thread.join(min(0.1, max(0.0, deadline - time.monotonic())))
        return not any(t.is_alive() for t in self._threads)
