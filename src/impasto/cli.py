"""The ``impasto`` command. Its options are generated from :class:`impasto.settings.Settings`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .console import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    StopOnSignal,
    Subcommands,
    add_settings_arguments,
    fmt,
    settings_from_args,
)
from .errors import ImpastoError, SettingsError
from .results import StopReason
from .settings import Settings, flag


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error on one line, without the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_paper_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--paper",
        action="store_true",
        help="start from the paper's setting instead of the defaults (equal style layers, "
        "one scale, 500 iterations from noise; see docs/defaults.md); other options apply on top",
    )


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
    from .batches.cli import add_batch_command

    add_batch_command(sub)
    _add_video_command(sub)
    p = sub.add_parser(
        "serve",
        help="start the web app and REST API (needs the 'web' extra)",
        description="Serve the impasto web page and its REST API. Jobs run one "
        "at a time, or several at once as Ray tasks with --ray; the limits below protect "
        "the machine.",
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
    _add_paper_argument(p)
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
    _add_paper_argument(p)
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


def _add_video_command(sub: Subcommands) -> None:
    from .video.settings import DESCRIPTION, VideoSettings

    p = sub.add_parser("video", help="paint a video, frame by frame", description=DESCRIPTION)
    p.add_argument("input", metavar="INPUT", help="the video to repaint (any FFmpeg reads)")
    p.add_argument("styles", metavar="STYLE", nargs="+", help="one or more style images")
    g = p.add_argument_group("output")
    g.add_argument("-o", "--output", required=True, metavar="OUTPUT", help="see above")
    g.add_argument(
        "--overwrite", action="store_true", help="replace OUTPUT, and a work folder of another run"
    )
    g.add_argument("--report", metavar="FILE.json", help="write per-frame losses and times")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")
    add_settings_arguments(p, exclude=("checkpoint_every",))
    add_settings_arguments(p, fields_of=VideoSettings)
    from .distributed.video import add_video_ray_arguments

    add_video_ray_arguments(p)


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


def run_stylize(
    args: argparse.Namespace, content: Any, styles: list[Any], settings: Settings
) -> int:
    from .io import images
    from .run.loop import Stylizer
    from .run.tiled import TileMeter

    output = images.check_output_path(args.output, overwrite=args.overwrite)
    if args.report:
        images.check_writable(args.report, overwrite=args.overwrite)
    # A first scale that is tiled (a print at --scales 1) measures its targets before
    # the progress bar exists: say how far that has got.
    tiles = TileMeter(None if args.quiet else _targets_tile)
    return _drive(args, Stylizer(content, styles, settings, tiles=tiles), output)


def _targets_tile(done: int, total: int) -> None:
    end = "\n" if done == total else ""
    print(f"\rimpasto: measuring the targets, tile {done}/{total}", end=end, file=sys.stderr)


def _drive(args: argparse.Namespace, stylizer: Any, output: Path) -> int:
    """Run with a progress display; on Ctrl-C or SIGTERM keep the best image and the state."""
    s = stylizer.settings
    sizes = " > ".join(str(n) for n in stylizer.sizes)
    # Scales larger than the tile run tiled (docs/tiled.md).
    tiled = f", tiles of {s.tile} px" if s.tile and max(stylizer.sizes) > s.tile else ""
    _say(
        args,
        f"impasto: {s.optimizer} on {stylizer.device} in {stylizer.machine.precision}, "
        f"scales {sizes} px{tiled}, "
        f"up to {stylizer.planned_iterations()} iterations, seed {s.seed}",
    )
    with StopOnSignal(stylizer) as signals, _ProgressDisplay(args, stylizer) as display:
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


class _ProgressDisplay:
    """A progress bar on stderr (none with --quiet) and a line every --print-every iterations."""

    def __init__(self, args: argparse.Namespace, stylizer: Any) -> None:
        self.args = args
        self.print_every = stylizer.settings.print_every
        self.bar = None
        self.postfix = ""
        self.tiles = getattr(getattr(stylizer, "targets", None), "tiles", None)
        if not args.quiet:
            from tqdm import tqdm

            self.bar = tqdm(
                total=stylizer.planned_iterations(),
                initial=stylizer.iteration,
                unit="it",
                dynamic_ncols=True,
                file=sys.stderr,
            )
            if self.tiles is not None:  # a print's iteration is long: show its tiles go by
                self.tiles.callback = self.tile

    def __enter__(self) -> _ProgressDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()

    def show(self, p: Any) -> None:
        losses = [f"{k} {fmt(v)}" for k, v in p.losses.items()]
        if self.bar is not None:
            self.bar.total = p.iterations
            self.postfix = f"{p.size[0]}x{p.size[1]} " + " ".join(losses)
            self.bar.set_postfix_str(self.postfix, refresh=False)
            self.bar.update(p.iteration - self.bar.n)
        if self.print_every and p.iteration % self.print_every == 0 and not self.args.quiet:
            line = (
                f"iteration {p.iteration}/{p.iterations} at {p.size[0]}x{p.size[1]}: "
                + ", ".join(losses)
                + f", ETA {p.eta:.0f} s"
            )
            # Through tqdm so the line lands above the bar, not inside it.
            self.bar.write(line, file=sys.stderr) if self.bar is not None else _say(self.args, line)

    def tile(self, done: int, total: int) -> None:
        """Tiles done within a tiled iteration (both passes count), or while the targets
        of a tiled scale are measured."""
        if self.bar is not None:  # the callback of self.tiles
            stage = "targets, " if self.tiles.stage == "targets" else ""
            self.bar.set_postfix_str(f"{self.postfix} {stage}tile {done}/{total}".strip())


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
        f"{fmt(result.losses['total'])}; {why}"
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
        if args.command == "video":
            from .video.command import run_video

            return run_video(args, settings_from_args(args), StopOnSignal)
        if args.command == "batch":
            from .batches.cli import run_batch

            return run_batch(args)
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
