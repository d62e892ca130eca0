"""``impasto batch``: the command, its progress bar and its summary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..console import (
    StopOnSignal,
    Subcommands,
    add_ray_arguments,
    add_settings_arguments,
    fmt,
    settings_from_args,
)
from .driver import BatchEvent, BatchRun
from .report import ItemStatus

# Per-iteration output has no place among many items; checkpoints none beside them.
NOT_FOR_BATCHES = ("checkpoint_every", "print_every")


def add_batch_command(sub: Subcommands) -> None:
    p = sub.add_parser(
        "batch",
        help="paint many images: each content with each style, here or on a Ray cluster",
        description="Paint every content image (files, folders, globs) with every style "
        "into OUT_DIR as CONTENT--STYLE.png. Outputs already made with the same settings "
        "and inputs are skipped; a bad input is reported and the rest go on. Exit status "
        "0 when all succeed, 1 when some failed, 2 for usage errors.",
    )
    p.add_argument("inputs", metavar="INPUT", nargs="*", help="content images, folders or globs")
    g = p.add_argument_group("batch")
    g.add_argument(
        "--styles",
        "--style",
        nargs="+",
        default=[],
        metavar="STYLE",
        help="style images (files, folders or globs); each content is painted with each",
    )
    g.add_argument(
        "--blend",
        action="store_true",
        help="paint each content once with all --styles together (one multi-style set)",
    )
    g.add_argument(
        "--pairs",
        metavar="FILE.csv",
        help="explicit items instead of INPUTS and --styles: a CSV file with the columns "
        "content, style (several joined by ';') and optionally output",
    )
    g.add_argument(
        "-o",
        "--output-dir",
        "--out-dir",
        dest="out_dir",
        required=True,
        metavar="OUT_DIR",
        help="folder for the outputs (made if missing)",
    )
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="replace outputs made with other settings or inputs (and a report file)",
    )
    g.add_argument(
        "--report",
        metavar="FILE.json",
        help="write each item's inputs, output, status and reason, seconds, losses, "
        "peak memory and Ray node as JSON",
    )
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")
    add_ray_arguments(p, "the items")
    add_settings_arguments(p, exclude=NOT_FOR_BATCHES)


def run_batch(args: argparse.Namespace) -> int:
    from .api import batch

    settings = settings_from_args(args)
    display = _Display(quiet=args.quiet)
    try:
        with StopOnSignal(_Forward(display)):
            report = batch(
                args.inputs,
                args.styles,
                out_dir=args.out_dir,
                pairs=args.pairs,
                blend=args.blend,
                overwrite=args.overwrite,
                ray=args.ray,
                task_cpus=args.task_cpus,
                task_gpus=args.task_gpus,
                report=args.report,
                on_event=display.show,
                on_start=display.start,
                settings=settings,
            )
    finally:
        display.close()
    # The table of failures is printed even with --quiet; the line of counts is not.
    for line in report.summary_lines()[: -1 if args.quiet else None]:
        print(line, file=sys.stderr)
    if report.interrupted:
        print("impasto: interrupted; run the same command again to paint the rest", file=sys.stderr)
    return report.exit_status


class _Forward:
    """What the signal handler stops: the batch once it has started."""

    def __init__(self, display: _Display) -> None:
        self.display = display

    def request_stop(self) -> None:
        run = self.display.run
        if run is None:  # still setting up: nothing to keep, stop at once
            raise KeyboardInterrupt
        run.request_stop()


class _Display:
    """One progress bar over the items and a line per finished item (none with --quiet)."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.run: BatchRun | None = None
        self.bar: Any = None
        self.running: dict[int, str] = {}

    def start(self, run: BatchRun) -> None:
        self.run = run
        if self.quiet:
            return
        from tqdm import tqdm

        where = f"Ray at {run.executor.address}" if run.executor.address else "this process"
        print(f"impasto: {len(run.items)} items on {where}", file=sys.stderr)
        self.bar = tqdm(total=len(run.items), unit="img", dynamic_ncols=True, file=sys.stderr)

    def show(self, event: BatchEvent) -> None:
        if self.bar is None:
            return
        name = Path(event.record.output).name
        if event.kind == "started":
            self.running[event.index] = name
        elif event.kind == "progress" and event.progress is not None:
            p = event.progress
            self.running[event.index] = f"{name} {p.iteration}/{p.iterations}"
        elif event.kind == "finished":
            self.running.pop(event.index, None)
            self.bar.write(_line(event), file=sys.stderr)
            self.bar.update(1)
        self.bar.set_postfix_str(self._state(), refresh=event.kind != "progress")

    def _state(self) -> str:
        assert self.run is not None
        counts: dict[str, int] = {}
        for record in self.run.records:
            counts[record.status.value] = counts.get(record.status.value, 0) + 1
        shown = ", ".join(f"{n} {s}" for s, n in counts.items() if s != "queued")
        running = list(self.running.values())
        if len(running) == 1:
            return f"{shown} | {running[0]}"
        return f"{shown} | {len(running)} running" if running else shown

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _line(event: BatchEvent) -> str:
    r = event.record
    name = Path(r.output).name
    if r.status is ItemStatus.DONE:
        where = f" on node {r.node_id[:8]}" if r.node_id else ""
        total = (r.losses or {}).get("total", float("nan"))
        return f"done     {name} in {r.seconds or 0:.1f} s{where}, total loss {fmt(total)}"
    return f"{r.status.value:8s} {name}: {r.reason}"
