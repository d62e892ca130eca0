"""Painting one batch item from image bytes to PNG bytes, wherever it runs.

The same function runs in the batch's own process and inside a Ray task
(:mod:`impasto.distributed`): the inputs arrive as the bytes of their files and the
result leaves as the bytes of a finished PNG, so a worker needs no file system in
common with the machine that started the batch. The caller writes the file.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import ImpastoError
from ..io import images, metadata
from ..results import Progress, StopReason, StylizeResult
from ..settings import Settings

_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])


@dataclass
class ItemSpec:
    """What painting an item needs besides its image bytes, which travel on their own."""

    index: int
    content_name: str  # the path as the user gave it: for messages
    style_names: tuple[str, ...]
    content_record: dict[str, Any]  # path and SHA-256, for the output's provenance
    style_records: tuple[dict[str, Any], ...]
    settings: dict[str, Any]  # Settings.to_dict()
    content_masks: list[Image.Image] | None = None
    style_masks: list[Image.Image] | None = None
    threads: int = 0  # CPU threads where the settings leave it to impasto (0)


@dataclass
class ItemOutcome:
    """How painting an item went; ``png`` holds the finished file when it is done."""

    index: int
    status: str  # "done", "failed" or "interrupted"
    reason: str | None = None
    png: bytes | None = None
    losses: dict[str, float] = field(default_factory=dict)
    iterations: int = 0
    stopped: str | None = None  # a StopReason value
    seconds: float = 0.0  # wall time of the item, setup included
    peak_memory_bytes: int | None = None
    device: str | None = None
    precision: str | None = None
    seed: int | None = None  # the seed the run used
    node_id: str | None = None  # the Ray node that ran it (None in-process)
    warnings: list[str] = field(default_factory=list)


def paint(
    spec: ItemSpec,
    content: bytes,
    styles: Sequence[bytes],
    *,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ItemOutcome:
    """Paint one item. Bad input gives a failed outcome naming the file; it never raises
    :class:`~impasto.errors.ImpastoError`. ``should_stop`` (or Ctrl-C) ends the run
    after its iteration, with the outcome ``interrupted`` and no image."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="impasto-item-") as tmp:
        names = _write_inputs(Path(tmp), spec, content, styles)
        paths = list(names)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                outcome = _run(spec, paths[0], paths[1:], on_progress, should_stop, Path(tmp))
            except ImpastoError as e:
                outcome = ItemOutcome(spec.index, "failed", _renamed(str(e), names))
        outcome.warnings = [
            _renamed(str(w.message), names) for w in caught if w.filename.startswith(_PACKAGE_DIR)
        ]
    outcome.seconds = time.perf_counter() - t0
    return outcome


def _write_inputs(
    tmp: Path, spec: ItemSpec, content: bytes, styles: Sequence[bytes]
) -> dict[str, str]:
    """The inputs as files under ``tmp``, keeping their names: temporary path -> user's name."""
    names = {}
    for i, (data, name) in enumerate(
        [(content, spec.content_name), *zip(styles, spec.style_names)]
    ):
        folder = tmp / f"input{i}"
        folder.mkdir()
        path = folder / (Path(name).name or "image")
        path.write_bytes(data)
        names[str(path)] = name
    return names


def _renamed(message: str, names: dict[str, str]) -> str:
    for tmp_path, name in names.items():
        message = message.replace(tmp_path, name)
    return message


def _run(
    spec: ItemSpec,
    content: str,
    styles: list[str],
    on_progress: Callable[[Progress], None] | None,
    should_stop: Callable[[], bool] | None,
    tmp: Path,
) -> ItemOutcome:
    from ..run.loop import Stylizer  # torch is imported where items are painted

    settings = Settings.from_dict(spec.settings)
    if settings.threads == 0 and spec.threads:
        settings = settings.replace(threads=spec.threads)
    reset_peak_memory()
    stylizer = Stylizer(
        content,
        styles,
        settings,
        content_mask_images=spec.content_masks,
        style_mask_images=spec.style_masks,
    )
    stopped = False
    try:
        for p in stylizer.run():
            if on_progress is not None:
                on_progress(p)
            if should_stop is not None and should_stop():
                stylizer.request_stop()
                stopped = True
    except KeyboardInterrupt:  # Ctrl-C in the batch's process, or ray.cancel in a task
        stopped = True
    result = stylizer.result(StopReason.INTERRUPTED if stopped else None)
    release_device_memory(stylizer.device.type)
    outcome = ItemOutcome(
        spec.index,
        "done",
        losses=dict(result.losses),
        iterations=result.iterations,
        stopped=StopReason(result.stopped).value,
        peak_memory_bytes=result.peak_memory_bytes,
        device=result.device,
        precision=result.precision,
        seed=result.settings.seed,
    )
    reason = StopReason(result.stopped)
    if stopped:
        outcome.status, outcome.reason = "interrupted", reason.message(result.iterations)
    elif reason.failed:
        outcome.status = "failed"
        outcome.reason = reason.message(result.iterations, result.stop_detail)
    else:
        outcome.png = encode_png(result, spec, tmp / "result.png")
    return outcome


def encode_png(result: StylizeResult, spec: ItemSpec, scratch: Path) -> bytes:
    """The result as PNG bytes whose provenance names the user's files, not the copies."""
    result.content_source, result.style_sources = None, [None] * len(spec.style_records)
    record = result.provenance()
    record["content"], record["styles"] = spec.content_record, list(spec.style_records)
    img = images.apply_alpha(result.image, result.alpha)
    images.save_image(img, scratch, text={metadata.PNG_KEY: json.dumps(record)})
    return scratch.read_bytes()


def reset_peak_memory() -> None:
    """Start the peak-memory count afresh, so a long-lived process reports each item's own."""
    try:
        # Writing 5 resets the kernel's high-water mark of this process (Linux).
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()


def release_device_memory(device_type: str) -> None:
    """Hand a GPU's cached blocks back, for other runs sharing it."""
    if device_type == "cuda":
        import torch

        torch.cuda.empty_cache()


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """A file's bytes, or an ImpastoError in one line naming it."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ImpastoError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImpastoError(f"{path}: is a folder, not an image file") from None
    except PermissionError:
        raise ImpastoError(f"{path}: permission denied") from None
    except OSError as e:
        raise ImpastoError(f"{path}: cannot read ({e.strerror or e})") from None
