"""Running a batch: decide what each item needs, paint the rest, write what comes back.

The driver reads every input file once, as bytes, and hands them with an
:class:`~impasto.batches.paint.ItemSpec` to an executor: :class:`LocalExecutor` paints
in this process, one item after another; :class:`impasto.distributed.RayExecutor`
paints as Ray tasks. Either way the finished PNG comes back as bytes and the driver
writes it atomically, so an interrupted batch leaves only whole files, and running
the same command again skips them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from PIL import Image

from ..errors import ImpastoError
from ..io.files import atomic_file
from ..results import Progress
from ..settings import Settings
from .existing import Verdict, judge
from .paint import ItemOutcome, ItemSpec, paint, read_bytes
from .plan import BatchError, BatchItem
from .report import BatchReport, ItemRecord, ItemStatus


@dataclass
class Job:
    """An item ready to paint: its spec and the bytes of its files."""

    spec: ItemSpec
    content: bytes
    styles: list[tuple[str, bytes]]  # (resolved path, bytes): one copy per style file


@dataclass
class BatchEvent:
    """What a progress display hears: an item ``started``, made ``progress`` or ``finished``."""

    kind: str
    index: int
    record: ItemRecord
    progress: Progress | None = None


class Executor(Protocol):
    """Paints jobs and yields their outcomes, in any order."""

    address: str | None  # where they run: None for this process
    stopped: bool  # stopped early (request_stop, or Ctrl-C while it waited)

    def outcomes(
        self,
        jobs: Iterator[Job],
        started: Callable[[int], None],
        progress: Callable[[int, Progress], None],
    ) -> Iterator[ItemOutcome]: ...

    def request_stop(self) -> None: ...

    def close(self) -> None: ...


class LocalExecutor:
    """Paints in this process, one item at a time, with progress every iteration."""

    address = None

    def __init__(self) -> None:
        self.stopped = False

    def request_stop(self) -> None:
        self.stopped = True

    def close(self) -> None:
        pass

    def outcomes(
        self,
        jobs: Iterator[Job],
        started: Callable[[int], None],
        progress: Callable[[int, Progress], None],
    ) -> Iterator[ItemOutcome]:
        for job in jobs:
            if self.stopped:
                return
            index = job.spec.index
            started(index)
            try:
                yield paint(
                    job.spec,
                    job.content,
                    [data for _, data in job.styles],
                    on_progress=lambda p, i=index: progress(i, p),
                    should_stop=lambda: self.stopped,
                )
            except Exception as e:  # a fault of impasto's on one input: the rest go on
                yield ItemOutcome(index, "failed", f"internal error: {type(e).__name__}: {e}")


class BatchRun:
    """One batch over ``items``; :meth:`run` does it, :meth:`request_stop` ends it early."""

    def __init__(
        self,
        items: Sequence[BatchItem],
        settings: Settings,
        executor: Executor,
        *,
        overwrite: bool = False,
        on_event: Callable[[BatchEvent], None] | None = None,
        threads: int = 0,
    ):
        self.items = list(items)
        self.settings = settings
        self.executor = executor
        self.overwrite = overwrite
        self.on_event = on_event
        self.threads = threads
        self.records = [ItemRecord.of(item) for item in self.items]
        self._styles: dict[Path, tuple[bytes, str] | str] = {}  # bytes and hash, or why not
        self._masks = _load_masks(settings)
        self._stop = False

    def request_stop(self) -> None:
        """Finish no more items (safe from a signal handler); what finished is kept."""
        self._stop = True
        self.executor.request_stop()

    def run(self) -> BatchReport:
        t0 = time.perf_counter()
        report = BatchReport(
            self.records, self.settings.to_dict(), ray_address=self.executor.address
        )
        try:
            todo = [i for i in range(len(self.items)) if self._needs_painting(i)]
            for outcome in self.executor.outcomes(self._jobs(todo), self._started, self._progress):
                self._finish(outcome)
        except KeyboardInterrupt:
            self.request_stop()
        finally:
            self.executor.close()
        for record in self.records:
            if record.status is ItemStatus.QUEUED:
                record.status, record.reason = ItemStatus.CANCELLED, "the batch was interrupted"
        report.interrupted = self._stop or self.executor.stopped
        report.seconds = time.perf_counter() - t0
        return report

    # --- before painting ------------------------------------------------------------
    def _style(self, path: Path) -> tuple[bytes, str]:
        key = path.resolve()
        if key not in self._styles:
            try:
                data = read_bytes(path)
                self._styles[key] = (data, hashlib.sha256(data).hexdigest())
            except ImpastoError as e:
                self._styles[key] = str(e)
        got = self._styles[key]
        if isinstance(got, str):
            raise ImpastoError(got)
        return got

    def _needs_painting(self, index: int) -> bool:
        """Settle the items whose output exists: skipped, in the way, or to be redone."""
        item = self.items[index]
        if not item.output.exists():
            return True
        try:
            content_sha = hashlib.sha256(read_bytes(item.content)).hexdigest()
            style_shas = [self._style(s)[1] for s in item.styles]
        except ImpastoError as e:
            self._settle(index, ItemStatus.FAILED, str(e))
            return False
        verdict, why = judge(item.output, self.settings, content_sha, style_shas)
        if verdict is Verdict.SAME:
            self._settle(index, ItemStatus.SKIPPED, why)
            return False
        if verdict is Verdict.OTHER and not self.overwrite:
            self._settle(
                index, ItemStatus.FAILED, f"{item.output}: {why}; pass --overwrite to replace it"
            )
            return False
        return True

    def _jobs(self, todo: list[int]) -> Iterator[Job]:
        """Read each item's files just before it is handed over, so memory holds few at once."""
        for index in todo:
            if self._stop:
                return
            item = self.items[index]
            try:
                content = read_bytes(item.content)
                styles = [(str(s.resolve()), *self._style(s)) for s in item.styles]
            except ImpastoError as e:
                self._settle(index, ItemStatus.FAILED, str(e))
                continue
            spec = ItemSpec(
                index=index,
                content_name=str(item.content),
                style_names=tuple(str(s) for s in item.styles),
                content_record=_record(item.content, hashlib.sha256(content).hexdigest()),
                style_records=tuple(_record(Path(p), sha) for p, _, sha in styles),
                settings=self.settings.to_dict(),
                content_masks=self._masks[0],
                style_masks=self._masks[1],
                threads=self.threads,
            )
            yield Job(spec, content, [(p, data) for p, data, _ in styles])

    # --- as items go ----------------------------------------------------------------
    def _started(self, index: int) -> None:
        self._emit("started", index)

    def _progress(self, index: int, progress: Progress) -> None:
        self._emit("progress", index, progress)

    def _finish(self, outcome: ItemOutcome) -> None:
        record = self.records[outcome.index]
        for name in ("losses", "iterations", "stopped", "seconds", "peak_memory_bytes"):
            setattr(record, name, getattr(outcome, name))
        for name in ("device", "precision", "seed", "node_id", "warnings"):
            setattr(record, name, getattr(outcome, name))
        if outcome.status == "done" and outcome.png is not None:
            try:
                with atomic_file(self.items[outcome.index].output) as f:
                    f.write(outcome.png)
            except OSError as e:
                self._settle(outcome.index, ItemStatus.FAILED, f"cannot write the output ({e})")
                return
            self._settle(outcome.index, ItemStatus.DONE, None)
        elif outcome.status == "interrupted":  # Ctrl-C reached the run: end the batch
            self.request_stop()
            self._settle(outcome.index, ItemStatus.CANCELLED, outcome.reason)
        else:
            self._settle(outcome.index, ItemStatus.FAILED, outcome.reason)

    def _settle(self, index: int, status: ItemStatus, reason: str | None) -> None:
        record = self.records[index]
        record.status, record.reason = status, reason
        self._emit("finished", index)

    def _emit(self, kind: str, index: int, progress: Progress | None = None) -> None:
        if self.on_event is not None:
            self.on_event(BatchEvent(kind, index, self.records[index], progress))


def _record(path: Path, sha256: str) -> dict[str, str]:
    """An input as the output's provenance records it (as impasto.io.metadata does)."""
    return {"path": str(path.resolve()), "sha256": sha256}


def _load_masks(settings: Settings) -> tuple[list[Image.Image] | None, list[Image.Image] | None]:
    """Mask files, read once here so that workers elsewhere need not have them."""
    if not settings.content_masks and not settings.style_masks:
        return None, None
    from ..loss.guidance import load_mask

    def load(paths: tuple[str, ...] | None) -> list[Image.Image] | None:
        return [load_mask(p) for p in paths] if paths else None

    return load(settings.content_masks), load(settings.style_masks)


def check_ready(items: Sequence[BatchItem], settings: Settings, out_dir: Path) -> None:
    """Refuse, before any work, settings that do not fit the items and an unusable OUT_DIR."""
    if not items:
        raise BatchError("nothing to paint: no content images")
    for n in sorted({len(item.styles) for item in items}):
        settings.validate(n_styles=n)
    if out_dir.exists() and not out_dir.is_dir():
        raise BatchError(f"{out_dir}: is a file, not a folder for the outputs")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BatchError(
            f"{out_dir}: cannot create the output folder ({e.strerror or e})"
        ) from None
    for item in items:
        item.output.parent.mkdir(parents=True, exist_ok=True)
