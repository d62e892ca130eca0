"""What a batch reports: one record per item, a summary, and the ``--report`` JSON."""

from __future__ import annotations

import enum
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..io.files import atomic_file
from .plan import BatchItem

REPORT_KEY = "impasto_batch"  # marks a JSON file as a batch report that a rerun may replace


class ItemStatus(str, enum.Enum):
    QUEUED = "queued"  # not finished yet (only seen while the batch runs)
    DONE = "done"  # painted and written
    SKIPPED = "skipped"  # the output was already made with the same settings and inputs
    FAILED = "failed"  # bad input, an existing output in the way, a run that failed
    CANCELLED = "cancelled"  # the batch was interrupted before the item finished


@dataclass
class ItemRecord:
    """One item of the report; ``node_id`` is the Ray node that painted it, if Ray did."""

    content: str
    styles: list[str]
    output: str
    status: ItemStatus = ItemStatus.QUEUED
    reason: str | None = None
    seconds: float | None = None
    losses: dict[str, float] | None = None
    iterations: int | None = None
    stopped: str | None = None
    peak_memory_bytes: int | None = None
    device: str | None = None
    precision: str | None = None
    seed: int | None = None
    node_id: str | None = None
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, item: BatchItem) -> ItemRecord:
        return cls(str(item.content), [str(s) for s in item.styles], str(item.output))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        if self.seconds is not None:
            data["seconds"] = round(self.seconds, 3)
        return data


@dataclass
class BatchReport:
    """The outcome of a batch: ``records`` in the order of the items."""

    records: list[ItemRecord]
    settings: dict[str, Any]
    seconds: float = 0.0
    ray_address: str | None = None  # the cluster's address, None when run in-process
    interrupted: bool = False

    def counts(self) -> dict[str, int]:
        counted = Counter(r.status.value for r in self.records)
        return {s.value: counted[s.value] for s in ItemStatus if s is not ItemStatus.QUEUED}

    @property
    def failed(self) -> list[ItemRecord]:
        return [r for r in self.records if r.status is ItemStatus.FAILED]

    @property
    def exit_status(self) -> int:
        """0 when every item is done or skipped, 1 when some failed, 130 when interrupted."""
        if self.interrupted:
            return 130
        return 1 if self.failed else 0

    def to_dict(self) -> dict[str, Any]:
        from .. import __version__

        return {
            REPORT_KEY: __version__,
            "summary": self.counts(),
            "seconds": round(self.seconds, 3),
            "ray_address": self.ray_address,
            "interrupted": self.interrupted,
            "settings": self.settings,
            "items": [r.to_dict() for r in self.records],
        }

    def write(self, path: str | os.PathLike[str]) -> None:
        with atomic_file(path) as f:
            f.write(json.dumps(self.to_dict(), indent=2).encode() + b"\n")

    def summary_lines(self) -> list[str]:
        """A table of the failures, then one line of counts."""
        lines = []
        failed = self.failed
        if failed:
            width = min(40, max(len(Path(r.output).name) for r in failed))
            lines.append(f"{'failed output':{width}s}  why")
            lines += [f"{Path(r.output).name:{width}s}  {r.reason}" for r in failed]
        counts = ", ".join(f"{n} {status}" for status, n in self.counts().items() if n)
        lines.append(f"impasto batch: {counts or 'nothing to do'} in {self.seconds:.1f} s")
        return lines


def is_batch_report(path: Path) -> bool:
    """Whether ``path`` holds a report an earlier batch wrote (which a rerun may replace)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and REPORT_KEY in data
