"""``impasto.batch``: paint many images, here or on a Ray cluster."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..io import images
from ..settings import Settings
from .driver import BatchEvent, BatchRun, Executor, LocalExecutor, check_ready
from .plan import BatchError, BatchItem, cross_items, expand_inputs, read_pairs
from .report import BatchReport, is_batch_report

PathLike = str | os.PathLike[str]


def plan(
    inputs: Sequence[PathLike] = (),
    styles: Sequence[PathLike] = (),
    *,
    out_dir: PathLike,
    pairs: PathLike | None = None,
    blend: bool = False,
) -> list[BatchItem]:
    """The items of a batch: each content with each style (or all styles as one blend with
    ``blend``), or the rows of a ``pairs`` CSV file."""
    out = Path(out_dir)
    if pairs is not None:
        if inputs or styles:
            raise BatchError("give either content images and styles, or a pairs file, not both")
        return read_pairs(pairs, out)
    if not inputs:
        raise BatchError("no content images given")
    if not styles:
        raise BatchError("no style images given (--styles)")
    style_paths = expand_inputs(styles, "style")
    for path in style_paths:
        images.load_image(path)  # a bad style would fail every item: say so now
    return cross_items(expand_inputs(inputs, "content"), style_paths, out, blend=blend)


def batch(
    inputs: Sequence[PathLike] = (),
    styles: Sequence[PathLike] = (),
    *,
    out_dir: PathLike,
    pairs: PathLike | None = None,
    blend: bool = False,
    overwrite: bool = False,
    ray: bool | str | None = None,
    task_cpus: float | None = None,
    task_gpus: float | None = None,
    report: PathLike | None = None,
    on_event: Callable[[BatchEvent], None] | None = None,
    on_start: Callable[[BatchRun], None] | None = None,
    settings: Settings | None = None,
    **overrides: Any,
) -> BatchReport:
    """Paint every content image in ``inputs`` with every style into ``out_dir``.

    Outputs are ``<content>--<style>.png``; one already made with the same settings and
    inputs is skipped, one made otherwise is replaced only with ``overwrite``. A bad
    input fails its item and the others go on; the returned report says how each went
    (``report`` also writes it as JSON). ``ray`` runs the items as Ray tasks: ``True``
    joins ``RAY_ADDRESS`` or starts a local instance, a string is a cluster's address.
    ``task_cpus``/``task_gpus`` are what each task claims (default: one GPU where the
    cluster has GPUs, else all CPUs of its smallest node). Keyword arguments are
    settings. Ctrl-C ends the batch, keeping the items that finished.

    >>> report = batch(["photos/"], ["starry.jpg"], out_dir="painted", size=384)
    >>> report.counts()
    {'done': 12, 'skipped': 0, 'failed': 0, 'cancelled': 0}
    """
    settings = (settings or Settings()).replace(**overrides)
    out = Path(out_dir)
    items = plan(inputs, styles, out_dir=out, pairs=pairs, blend=blend)
    check_ready(items, settings, out)
    if report is not None:
        check_report_path(Path(report), overwrite=overwrite)
    executor = make_executor(ray, task_cpus=task_cpus, task_gpus=task_gpus)
    run = BatchRun(
        items,
        settings,
        executor,
        overwrite=overwrite,
        on_event=on_event,
        threads=getattr(executor, "threads", 0),
    )
    if on_start is not None:
        on_start(run)
    result = run.run()
    if report is not None:
        result.write(report)
    return result


def make_executor(
    ray: bool | str | None, *, task_cpus: float | None = None, task_gpus: float | None = None
) -> Executor:
    """This process, or Ray tasks (``ray``: True for the default cluster, or an address)."""
    if ray is None or ray is False:
        if task_cpus is not None or task_gpus is not None:
            raise BatchError("task CPUs and GPUs are claimed from Ray: use them with --ray")
        return LocalExecutor()
    from ..distributed.batch import RayExecutor

    return RayExecutor(None if ray is True else str(ray), task_cpus=task_cpus, task_gpus=task_gpus)


def check_report_path(path: Path, *, overwrite: bool) -> None:
    """A report file may replace an earlier batch's report, anything else only with overwrite."""
    images.check_writable(path, overwrite=overwrite or is_batch_report(path))
