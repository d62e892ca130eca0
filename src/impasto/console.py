"""What every command of the ``impasto`` program shares: options generated from a
settings dataclass, number formatting, and stopping on Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import dataclasses
import math
import signal
import typing
from collections.abc import Sequence
from typing import Any

from .settings import Settings, base_type, field_types, flag

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

Subcommands = argparse._SubParsersAction  # what add_subparsers() returns


def format_default(value: Any, none: str | None = None) -> str:
    if isinstance(value, tuple):
        return " ".join(format_default(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return (none or "none") if value is None else str(value)


def _or_none(elem: type, word: str) -> Any:
    """An argparse type for a setting that takes ``word`` (``auto``) for None."""

    def convert(text: str) -> Any:
        return None if text == word else elem(text)

    convert.__name__ = elem.__name__  # named so in argparse's "invalid int value"
    return convert


def add_settings_arguments(
    parser: argparse.ArgumentParser, *, exclude: Sequence[str] = (), fields_of: type = Settings
) -> None:
    """One option per settings field, grouped, each help text showing its default.

    ``fields_of`` is the settings dataclass (fields built with ``settings._opt``)."""
    defaults = fields_of()
    types = field_types() if fields_of is Settings else typing.get_type_hints(fields_of)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in dataclasses.fields(fields_of):
        if f.name in exclude:
            continue
        meta = f.metadata
        group = groups.setdefault(meta["group"], parser.add_argument_group(meta["group"]))
        flags = [flag(f.name), *meta["flags"]]
        elem, is_tuple, _ = base_type(types[f.name])
        default = getattr(defaults, f.name)
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
        if elem is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _or_none(elem, meta["none"]) if meta["none"] else elem
            if is_tuple:
                kwargs["nargs"] = "+"
            if meta["choices"]:
                kwargs["choices"] = meta["choices"]
            if meta["metavar"]:
                kwargs["metavar"] = meta["metavar"]
        kwargs["help"] = f"{meta['help']} (default: {format_default(default, meta['none'])})"
        group.add_argument(*flags, **kwargs)


def settings_from_args(args: argparse.Namespace, base: Settings | None = None) -> Settings:
    names = {f.name for f in dataclasses.fields(Settings)}
    given = {k: v for k, v in vars(args).items() if k in names}
    if base is None and getattr(args, "paper", False):
        base = Settings.paper()
    return (base or Settings()).replace(**given)


def add_ray_arguments(parser: argparse.ArgumentParser, work: str) -> Any:
    """``--ray [ADDRESS]``, ``--task-cpus`` and ``--task-gpus``, for a command that runs
    ``work`` ("the items", "the jobs", ...) as Ray tasks; the group, for more options."""
    group = parser.add_argument_group("ray (needs the 'ray' extra)")
    group.add_argument(
        "--ray",
        nargs="?",
        const=True,
        default=None,
        metavar="ADDRESS",
        help=f"run {work} as Ray tasks: on the cluster at ADDRESS, else RAY_ADDRESS, "
        "else a new local Ray instance",
    )
    group.add_argument(
        "--task-cpus",
        type=float,
        metavar="N",
        help="CPUs each task claims (default: 1 with GPUs, else all of the smallest node)",
    )
    group.add_argument(
        "--task-gpus",
        type=float,
        metavar="F",
        help="GPUs each task claims; 0.5 lets two share one (default: 1 where there are GPUs)",
    )
    return group


def fmt(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else str(x)


class StopOnSignal:
    """Ctrl-C or SIGTERM asks the run to stop after its iteration; a second one stops it now."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, stylizer: Any) -> None:
        self.stylizer = stylizer
        self.count = 0  # signals received (or interrupts caught)
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignal:
        self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.count > 1:  # a second Ctrl-C: stop now, without waiting for the iteration
            raise KeyboardInterrupt
        self.stylizer.request_stop()
