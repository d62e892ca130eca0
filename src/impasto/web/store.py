"""The jobs of a server kept in SQLite (one file in the work folder, WAL mode).

A restart on the same work folder finds every job again: finished ones with their
results, queued ones in their order, and the one that was running marked interrupted.
Paths are stored relative to the work folder and checked to stay inside it when read
back, so neither a moved folder nor an edited database leads the server elsewhere.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no second-server check
    fcntl = None  # type: ignore[assignment]

from ..settings import Settings
from .job import Job, State

DB_NAME = "jobs.sqlite3"
LOCK_NAME = "server.lock"
SCHEMA_VERSION = 2
# Columns added since the first version, with their types: a database of an earlier
# version gets them (empty) when it is opened.
_ADDED = {2: (("frames", "INTEGER"), ("frames_done", "INTEGER"))}

_COLUMNS = (
    "id",
    "kind",
    "state",
    "created",
    "started",
    "finished",
    "settings",
    "content",
    "styles",
    "iterations",
    "iteration",
    "losses",
    "best_total",
    "elapsed",
    "error",
    "note",
    "has_result",
    "resumable",
    "frames",
    "frames_done",
)
_CREATE = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, kind TEXT, state TEXT, created REAL, started REAL, finished REAL,
    settings TEXT, content TEXT, styles TEXT, iterations INTEGER, iteration INTEGER,
    losses TEXT, best_total REAL, elapsed REAL, error TEXT, note TEXT,
    has_result INTEGER, resumable INTEGER, frames INTEGER, frames_done INTEGER
)
"""


class StoreError(Exception):
    pass


class JobStore:
    """Saves and loads :class:`Job` records; every call is one short transaction."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.path = self.root / DB_NAME
        self._lock = threading.Lock()
        self._hold = _hold_folder(self.root)
        self._closed = False
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL with NORMAL sync survives a crash of the process; a power cut may lose
            # the last few changes, never the database.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_CREATE)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path}: made by a newer version of impasto ({version})")
            if version:  # 0: a new file, made with every column
                for added in range(version + 1, SCHEMA_VERSION + 1):
                    for name, kind in _ADDED[added]:
                        self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as e:
            self._hold.close()
            raise StoreError(f"{self.path}: cannot use this job database ({e})") from None

    def save(self, job: Job) -> None:
        row = _row(job, self.root)
        marks = ", ".join("?" for _ in _COLUMNS)
        with self._lock:
            if self._closed:
                return
            self._db.execute(
                f"INSERT OR REPLACE INTO jobs ({', '.join(_COLUMNS)}) VALUES ({marks})",
                [row[c] for c in _COLUMNS],
            )

    def delete(self, job_id: str) -> None:
        with self._lock:
            if not self._closed:
                self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def load(self) -> list[Job]:
        """Every job that can still be read, oldest first; unreadable rows are dropped."""
        with self._lock:
            cursor = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM jobs ORDER BY created, rowid"
            )
            rows = [dict(zip(_COLUMNS, r)) for r in cursor.fetchall()]
        jobs = []
        for row in rows:
            try:
                jobs.append(_job(row, self.root))
            except Exception:  # a damaged row is one lost job, not a server that cannot start
                self.delete(str(row.get("id")))
        return jobs

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()
                self._hold.close()  # lets another server use the folder


def _hold_folder(root: Path) -> Any:
    """An open lock file that keeps a second server off this folder while it is open."""
    hold = open(root / LOCK_NAME, "a")  # noqa: SIM115 - held until close()
    if fcntl is not None:
        try:
            fcntl.flock(hold, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            hold.close()
            raise StoreError(f"{root}: another impasto serve is using this folder") from None
    return hold


def _row(job: Job, root: Path) -> dict[str, Any]:
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state.value,
        "created": job.created,
        "started": job.started,
        "finished": job.finished,
        # A video job's video settings ride along under "video".
        "settings": json.dumps(
            {**job.settings.to_dict(), **({"video": job.video} if job.video is not None else {})}
        ),
        "content": _relative(job.content, root),
        "styles": json.dumps([_relative(p, root) for p in job.styles]),
        "iterations": job.iterations,
        "iteration": job.iteration,
        "losses": None if job.losses is None else json.dumps(job.losses),
        "best_total": job.best_total,
        "elapsed": job.elapsed,
        "error": job.error,
        "note": job.note,
        "has_result": int(job.has_result),
        "resumable": int(job.resumable),
        "frames": job.frames,
        "frames_done": job.frames_done,
    }


def _job(row: dict[str, Any], root: Path) -> Job:
    content = _inside(row["content"], root)
    settings = json.loads(row["settings"])
    video = settings.pop("video", None)
    job = Job(
        id=str(row["id"]),
        folder=content.parent,
        content=content,
        styles=[_inside(p, root) for p in json.loads(row["styles"])],
        settings=Settings.from_dict(settings, strict=False),
        video=video if isinstance(video, dict) else None,
        iterations=int(row["iterations"]),
        kind=str(row["kind"]),
        created=float(row["created"]),
        state=State(row["state"]),
        iteration=int(row["iteration"]),
        losses=None if row["losses"] is None else json.loads(row["losses"]),
        best_total=row["best_total"],
        elapsed=row["elapsed"],
        started=row["started"],
        finished=row["finished"],
        error=row["error"],
        note=row["note"],
        has_result=bool(row["has_result"]),
        resumable=bool(row["resumable"]),
        frames=row["frames"],
        frames_done=row["frames_done"],
    )
    if job.folder.name != job.id or any(p.parent != job.folder for p in job.styles):
        raise ValueError("a job's files lie outside its folder")
    return job


def _relative(path: Path, root: Path) -> str:
    return path.resolve().relative_to(root).as_posix()


def _inside(text: str, root: Path) -> Path:
    path = (root / text).resolve()
    if not path.is_relative_to(root) or path == root:
        raise ValueError(f"{text!r} is outside the work folder")
    return path
