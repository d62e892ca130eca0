"""Whether an output already on disk is the one a batch item would make.

An impasto PNG records its settings and the SHA-256 of its inputs
(:mod:`impasto.io.metadata`); an output is taken as made when both match what the
item asks for. Settings that change how a run is executed but not the image it
aims at (the device, the threads, tiling, progress output) are not compared, nor
any setting left to impasto (None), such as the seed: the output records the value
the run chose.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ImpastoError
from ..io.metadata import read_provenance
from ..settings import Settings

NOT_COMPARED = frozenset(
    {"device", "threads", "compile", "cuda_graphs", "tile", "checkpoint_every", "print_every"}
)


class Verdict(str, enum.Enum):
    ABSENT = "absent"  # nothing there: paint it
    SAME = "same"  # made with the same settings and inputs: skip it
    OTHER = "other"  # something else is there: replaced only with overwrite


def judge(
    output: Path, settings: Settings, content_sha256: str, style_sha256: Sequence[str]
) -> tuple[Verdict, str]:
    """The verdict on ``output`` and, unless absent, why, in words for the user."""
    if not output.exists():
        return Verdict.ABSENT, ""
    if output.is_dir():
        return Verdict.OTHER, f"{output} is a folder"
    try:
        recorded = read_provenance(output)
    except ImpastoError:
        return Verdict.OTHER, "exists and records no impasto settings"
    changed = settings_changed(settings, recorded.get("settings", {}))
    if changed:
        return Verdict.OTHER, "exists, made with other settings (" + "; ".join(changed) + ")"
    if _sha(recorded.get("content")) != content_sha256:
        return Verdict.OTHER, "exists, made from another content image"
    if [_sha(s) for s in recorded.get("styles") or []] != list(style_sha256):
        return Verdict.OTHER, "exists, made from other style images"
    return Verdict.SAME, "already made with the same settings and inputs"


def settings_changed(wanted: Settings, recorded: dict[str, Any], limit: int = 3) -> list[str]:
    """``"size 256, now 512"`` for each compared setting that differs (the first ``limit``)."""
    try:
        # Through Settings, so a file from an older version gets today's defaults for
        # settings it predates, and values compare after the same conversions.
        then = Settings.from_dict(recorded, strict=False).to_dict()
    except ImpastoError:
        return ["its settings are not valid in this version"]
    now = wanted.to_dict()
    changed = [
        f"{name} {then[name]}, now {now[name]}"
        for name in now
        if name not in NOT_COMPARED and now[name] is not None and then.get(name) != now[name]
    ]
    return changed[:limit] + ([f"{len(changed) - limit} more"] if len(changed) > limit else [])


def _sha(record: object) -> str | None:
    return record.get("sha256") if isinstance(record, dict) else None
