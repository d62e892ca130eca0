"""Batch items as Ray tasks: bytes in through the object store, PNG bytes back.

Each task runs :func:`impasto.batches.paint.paint`, the function the batch runs
in-process, and claims the resources of one run (:func:`task_resources`). A style
image is put in the object store once and shared by every task that uses it. At
most twice as many tasks as the cluster can run at once are submitted, so the
object store holds the inputs of those only, and reading files keeps pace.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from ..batches.driver import Job
from ..batches.paint import ItemOutcome, ItemSpec, paint
from ..results import Progress
from .cluster import MAX_RETRIES, connect, task_resources


def paint_task(spec: ItemSpec, content: bytes, *styles: bytes) -> ItemOutcome:
    """The body of a task: paint, and say which node did."""
    import ray

    outcome = paint(spec, content, styles)
    outcome.node_id = ray.get_runtime_context().get_node_id()
    return outcome


@functools.cache
def _remote(ray: ModuleType) -> Any:
    # Ray's default for GPU tasks is a fresh worker per task (max_calls=1), which would
    # import torch and load the network again for every image.
    return ray.remote(max_calls=0)(paint_task)


class RayExecutor:
    """Runs a batch's jobs as Ray tasks (see :class:`impasto.batches.driver.Executor`)."""

    def __init__(
        self,
        address: str | None = None,
        *,
        task_cpus: float | None = None,
        task_gpus: float | None = None,
        max_retries: int = MAX_RETRIES,
    ):
        self.connection = connect(address)
        self.ray = self.connection.ray
        try:
            self.resources = task_resources(self.ray, task_cpus, task_gpus)
        except BaseException:
            self.connection.close()
            raise
        self.address: str | None = self.connection.address
        self.threads = self.resources.threads
        self.max_retries = max_retries
        self.options = {
            "num_cpus": self.resources.num_cpus,
            "num_gpus": self.resources.num_gpus,
            "max_retries": max_retries,
            "retry_exceptions": False,
        }
        self.window = 2 * self.resources.slots
        self.stopped = False
        self._pending: dict[Any, int] = {}  # object ref -> item index
        self._styles: dict[str, Any] = {}  # style path -> object ref of its bytes

    def request_stop(self) -> None:
        self.stopped = True

    def outcomes(
        self,
        jobs: Iterator[Job],
        started: Callable[[int], None],
        progress: Callable[[int, Progress], None],
    ) -> Iterator[ItemOutcome]:
        """Outcomes as tasks finish; after a stop, those already finished, then no more."""
        task = _remote(self.ray).options(**self.options)
        more = True
        try:
            while not self.stopped:
                while more and len(self._pending) < self.window:
                    job = next(jobs, None)
                    if job is None:
                        more = False
                        break
                    styles = [self._style(path, data) for path, data in job.styles]
                    ref = task.remote(job.spec, self.ray.put(job.content), *styles)
                    self._pending[ref] = job.spec.index
                    started(job.spec.index)
                if not self._pending:
                    return
                ready, _ = self.ray.wait(list(self._pending), num_returns=1, timeout=0.5)
                for ref in ready:
                    yield self._outcome(ref)
        except KeyboardInterrupt:
            self.stopped = True
        yield from self._finished_only()

    def _style(self, path: str, data: bytes) -> Any:
        if path not in self._styles:
            self._styles[path] = self.ray.put(data)
        return self._styles[path]

    def _finished_only(self) -> Iterator[ItemOutcome]:
        """The outcomes of tasks that have finished; the others are cancelled."""
        if not self._pending:
            return
        ready, rest = self.ray.wait(list(self._pending), num_returns=len(self._pending), timeout=0)
        self._cancel(rest)
        for ref in ready:
            yield self._outcome(ref)

    def _cancel(self, refs: list[Any]) -> None:
        for ref in refs:
            self._pending.pop(ref, None)
            self.ray.cancel(ref)

    def _outcome(self, ref: Any) -> ItemOutcome:
        index = self._pending.pop(ref)
        exceptions = self.ray.exceptions
        try:
            return self.ray.get(ref)
        except exceptions.TaskCancelledError:
            return ItemOutcome(index, "interrupted", "cancelled")
        except exceptions.RayTaskError as e:  # a fault of impasto's, not of the input
            cause = getattr(e, "cause", None) or e
            message = " ".join(str(cause).split())[:300]
            return ItemOutcome(
                index, "failed", f"internal error: {type(cause).__name__}: {message}"
            )
        except exceptions.RayError as e:
            return ItemOutcome(
                index,
                "failed",
                f"the Ray worker painting it was lost {self.max_retries + 1} times "
                f"({type(e).__name__}; killed, out of memory, or its node left the cluster)",
            )

    def close(self) -> None:
        """Cancel what is still running and leave the cluster if this executor joined it."""
        self._cancel(list(self._pending))
        self._styles.clear()
        self.connection.close()
