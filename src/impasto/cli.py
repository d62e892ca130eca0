"""The ``impasto`` command. Its options are generated from :class:`impasto.settings.Settings`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .errors import ImpastoError, SettingsError
from .results import StopReason
from .settings import Settings, base_type, field_types, flag

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

Subcommands = argparse._SubParsersAction  # what add_subparsers() returns


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line, without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _format_default(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(_format_default(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value is None else str(value)


def add_settings_arguments(parser: argparse.ArgumentParser, *, exclude: Sequence[str] = ()) -> None:
    """One option per settings field, grouped, each help text showing its default."""
    defaults = Settings()
    types = field_types()
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in dataclasses.fields(Settings):
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
            kwargs["type"] = elem
            if is_tuple:
                kwargs["nargs"] = "+"
            if meta["choices"]:
                kwargs["choices"] = meta["choices"]
            if meta["metavar"]:
                kwargs["metavar"] = meta["metavar"]
        kwargs["help"] = f"{meta['help']} (default: {_format_default(default)})"
        group.add_argument(*flags, **kwargs)


def settings_from_args(args: argparse.Namespace, base: Settings | None = None) -> Settings:
    names = {f.name for f in dataclasses.fields(Settings)}
    given = {k: v for k, v in vars(args).items() if k in names}
    return (base or Settings()).replace(**given)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(
        prog="impasto",
        description="Neural style transfer (Gatys, Ecker & Bethge 2016): repaint a photo "
        "in the style of one or more paintings.",
    )
    parser.add_argument("--version", action="version", version=f"impasto {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    _add_stylize_commands(sub)
    _add_score_command(sub)
    _add_rerun_commands(sub)
    p = sub.add_parser(
        "serve",
        help="start the web app and REST API (needs the 'web' extra)",
        description="Serve the impasto web page and its REST API. Jobs run one "
        "at a time; the limits below protect the machine.",
    )
    from .web.config import add_serve_arguments  # FastAPI itself is imported only to serve

    add_serve_arguments(p)
    return parser


# Settings that do not change a score: how a run starts, steps and reports.
NOT_SCORED = (
    "size",
    "iterations",
    "initial",
    "initial_noiseblend",
    "seed",
    "optimizer",
    "learning_rate",
    "beta1",
    "beta2",
    "epsilon",
    "checkpoint_every",
    "print_every",
    "preserve_colors",
)


def _add_stylize_commands(sub: Subcommands) -> None:
    p = sub.add_parser(
        "stylize",
        help="paint CONTENT in the style of STYLE(s)",
        description="Paint CONTENT in the style of one or more STYLE images.",
    )
    p.add_argument("content", metavar="CONTENT", help="the photo to repaint")
    p.add_argument("styles", metavar="STYLE", nargs="+", help="one or more style images")
    _add_output_arguments(p, required=True)
    add_settings_arguments(p)

    p = sub.add_parser(
        "demo",
        help="stylise the bundled example images (works offline)",
        description="Stylise the example photo bundled with impasto in the "
        "style of the bundled example painting.",
    )
    _add_output_arguments(p, required=False, default="impasto-demo.png")
    add_settings_arguments(p)


def _add_score_command(sub: Subcommands) -> None:
    p = sub.add_parser(
        "score",
        help="print the loss terms of an image",
        description="Score IMAGE against a content and style image(s) with "
        "the same loss as stylisation, at IMAGE's size.",
    )
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--content", required=True, metavar="FILE")
    p.add_argument("--style", "--styles", dest="styles", nargs="+", required=True, metavar="FILE")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_settings_arguments(p, exclude=NOT_SCORED)


def _add_rerun_commands(sub: Subcommands) -> None:
    p = sub.add_parser(
        "reproduce",
        help="re-run the settings stored in an impasto PNG",
        description="Run again with the settings and input files recorded in a "
        "PNG written by impasto.",
    )
    p.add_argument("image", metavar="PNG")
    _add_output_arguments(p, required=True)
    p.add_argument("--device", help="override the device (settings are otherwise as recorded)")

    p = sub.add_parser(
        "resume",
        help="continue an interrupted run from its state file",
        description="Continue a run stopped by Ctrl-C or SIGTERM from the state file it "
        "saved (OUTPUT.state.pt); the result is the one the run would have reached "
        "uninterrupted. The recorded output is replaced.",
    )
    p.add_argument("state", metavar="STATE")
    p.add_argument(
        "-o", "--output", metavar="FILE", help="write here instead of the recorded output"
    )
    p.add_argument("--report", metavar="FILE.json", help="write a JSON report")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")
    p.add_argument("--device", help="continue on another device")


def _add_output_arguments(
    p: argparse.ArgumentParser, *, required: bool, default: str | None = None
) -> None:
    g = p.add_argument_group("output")
    g.add_argument(
        "-o",
        "--output",
        required=required,
        default=default,
        metavar="FILE",
        help="output image (.png embeds the settings; .jpg, .webp, .tif, .bmp)"
        + (f" (default: {default})" if default else ""),
    )
    g.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    g.add_argument(
        "--report",
        metavar="FILE.json",
        help="write settings, losses, iterations, time and peak memory as JSON",
    )
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")


# --- running -----------------------------------------------------------------------


def _say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr)


def _write_json(path: str, data: dict[str, Any]) -> None:
    from .io.files import atomic_file

    with atomic_file(path) as f:
        f.write(json.dumps(data, indent=2).encode() + b"\n")


def _fmt(x: float) -> str:
    return f"{x:.4g}" if math.isfinite(x) else str(x)


def run_stylize(
    args: argparse.Namespace, content: Any, styles: list[Any], settings: Settings
) -> int:
    from .io import images
    from .run.loop import Stylizer

    output = images.check_output_path(args.output, overwrite=args.overwrite)
    if args.report:
        images.check_writable(args.report, overwrite=args.overwrite)
    return _drive(args, Stylizer(content, styles, settings), output)


def _drive(args: argparse.Namespace, stylizer: Any, output: Path) -> int:
    """Run with a progress display; on Ctrl-C or SIGTERM keep the best image and the state."""
    s = stylizer.settings
    sizes = " > ".join(str(n) for n in stylizer.sizes)
    _say(
        args,
        f"impasto: {s.optimizer} on {stylizer.device}, scales {sizes} px, "
        f"up to {stylizer.planned_iterations()} iterations, seed {s.seed}",
    )
    with _StopOnSignal(stylizer) as signals, _ProgressDisplay(args, stylizer) as display:
        try:
            for p in stylizer.run():
                display.show(p)
                _checkpoint(s.checkpoint_every, p, output)
        except KeyboardInterrupt:
            signals.count += 1
    result = stylizer.result(StopReason.INTERRUPTED if signals.count else None)
    # The user asked for this file and it was free (or --overwrite) when we started.
    result.save(output, overwrite=True)
    if args.report:
        _write_json(args.report, result.report())
    reason = StopReason(result.stopped)
    state = None
    if reason is StopReason.INTERRUPTED:
        from .run.state import save_state

        state = state_path(output)
        save_state(stylizer, state, {"output": str(output.resolve()), "report": args.report})
    _say(args, outcome_message(result, output, state))
    if reason is StopReason.INTERRUPTED:
        return EXIT_INTERRUPTED
    return 1 if reason.failed else 0


class _StopOnSignal:
    """Ctrl-C or SIGTERM asks the run to stop after its iteration; a second one stops it now."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, stylizer: Any) -> None:
        self.stylizer = stylizer
        self.count = 0  # signals received (or interrupts caught)
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopOnSignal:
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


class _ProgressDisplay:
    """A progress bar on stderr (none with --quiet) and a line every --print-every iterations."""

    def __init__(self, args: argparse.Namespace, stylizer: Any) -> None:
        self.args = args
        self.print_every = stylizer.settings.print_every
        self.bar = None
        if not args.quiet:
            from tqdm import tqdm

            self.bar = tqdm(
                total=stylizer.planned_iterations(),
                initial=stylizer.iteration,
                unit="it",
                dynamic_ncols=True,
                file=sys.stderr,
            )

    def __enter__(self) -> _ProgressDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()

    def show(self, p: Any) -> None:
        losses = [f"{k} {_fmt(v)}" for k, v in p.losses.items()]
        if self.bar is not None:
            self.bar.total = p.iterations
            self.bar.set_postfix_str(f"{p.size[0]}x{p.size[1]} " + " ".join(losses), refresh=False)
            self.bar.update(p.iteration - self.bar.n)
        if self.print_every and p.iteration % self.print_every == 0 and not self.args.quiet:
            line = (
                f"iteration {p.iteration}/{p.iterations} at {p.size[0]}x{p.size[1]}: "
                + ", ".join(losses)
                + f", ETA {p.eta:.0f} s"
            )
            # Through tqdm so the line lands above the bar, not inside it.
            self.bar.write(line, file=sys.stderr) if self.bar is not None else _say(self.args, line)


def _checkpoint(every: int, p: Any, output: Path) -> None:
    if every and p.iteration % every == 0:
        from .io import images

        path = output.with_name(f"{output.stem}.iter{p.iteration:05d}{output.suffix}")
        images.save_image(p.image(), path)


def outcome_message(result: Any, output: Path, state: Path | None = None) -> str:
    """The last line of a run: why it stopped (:class:`StopReason`), and what was kept."""
    reason = StopReason(result.stopped)
    why = reason.message(result.iterations, getattr(result, "stop_detail", None), name=flag)
    if reason is StopReason.INTERRUPTED:
        return (
            f"impasto: {why}; saved the best image so far to {output}; "
            f"continue with: impasto resume {state}"
        )
    if reason.failed:
        return f"impasto: {why}; saved the best image so far to {output}"
    return (
        f"impasto: wrote {output} in {result.seconds:.1f} s, total loss "
        f"{_fmt(result.losses['total'])}; {why}"
    )


def state_path(output: Path) -> Path:
    return output.with_name(output.name + ".state.pt")


def _resume(args: argparse.Namespace) -> int:
    from .run.state import load_state

    stylizer, extra = load_state(args.state, device=args.device)
    output = Path(args.output or extra.get("output") or "")
    if not args.output and not extra.get("output"):
        raise ImpastoError(f"{args.state}: records no output file; pass -o OUTPUT")
    args.report = args.report or extra.get("report")
    code = _drive(args, stylizer, output)
    if code == 0:
        Path(args.state).unlink(missing_ok=True)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "stylize":
            return run_stylize(args, args.content, args.styles, settings_from_args(args))
        if args.command == "demo":
            from .examples import demo_settings, example_paths

            content, style = example_paths()
            settings = settings_from_args(args, demo_settings())
            return run_stylize(args, str(content), [str(style)], settings)
        if args.command == "score":
            from .api import score

            losses = score(args.image, args.content, args.styles, settings_from_args(args))
            if args.json:
                print(json.dumps(losses))
            else:
                for k, v in losses.items():
                    print(f"{k:8s} {v:.6g}")
            return 0
        if args.command == "reproduce":
            return _reproduce(args)
        if args.command == "resume":
            return _resume(args)
        if args.command == "serve":
            from .web import serve_from_args

            return serve_from_args(args)
    except ImpastoError as e:
        print(f"impasto: error: {error_message(e)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("impasto: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    parser.error(f"unknown command {args.command}")


def error_message(error: ImpastoError) -> str:
    """An error as the command line says it: a setting is named by its option (``--size``)."""
    if isinstance(error, SettingsError) and error.setting:
        return f"{flag(error.setting)}: {error.message}"
    return str(error)


def _reproduce(args: argparse.Namespace) -> int:
    from .io.files import sha256_file
    from .io.metadata import read_provenance

    data = read_provenance(args.image)
    settings = Settings.from_dict(data["settings"], strict=False)
    if args.device:
        settings = settings.replace(device=args.device)
    inputs = [data.get("content"), *data.get("styles", [])]
    if any(i is None for i in inputs):
        raise ImpastoError(f"{args.image}: was made from in-memory images; nothing to re-read")
    for item in inputs:
        path = Path(item["path"])
        if not path.is_file():
            raise ImpastoError(f"{args.image}: input {path} no longer exists")
        if item.get("sha256") and sha256_file(path) != item["sha256"]:
            _say(args, f"impasto: warning: {path} has changed since {args.image} was made")
    return run_stylize(args, inputs[0]["path"], [i["path"] for i in inputs[1:]], settings)


def entry_point() -> NoReturn:
    sys.exit(main())
