"""What a batch paints: each content image with each style (or explicit pairs), and where.

Outputs are named from their inputs, ``<content>--<style>.png`` (several styles of one
blend joined by ``+``), so the same command always writes the same files and a second
run can tell which of them are already made.
"""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ImpastoError

# What a folder is searched for; a file named on its own is tried whatever its extension.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"}
    | {".ppm", ".pgm", ".pnm", ".avif", ".heic", ".heif", ".jp2"}
)
PAIRS_STYLE_SEPARATOR = ";"


class BatchError(ImpastoError):
    """A batch that cannot start: no inputs, a missing file, clashing output names."""


@dataclass(frozen=True)
class BatchItem:
    """One picture to paint: a content image, its style set, and the output file."""

    content: Path
    styles: tuple[Path, ...]
    output: Path


def output_name(content: Path, styles: Sequence[Path]) -> str:
    """``photo.jpg`` with ``a.jpg`` and ``b.png`` -> ``photo--a+b.png``."""
    return f"{content.stem}--{'+'.join(s.stem for s in styles)}.png"


def expand_inputs(specs: Iterable[str | os.PathLike[str]], what: str = "input") -> list[Path]:
    """Files, folders (their images, not recursing) and glob patterns, in order, once each."""
    found: list[Path] = []
    for spec in specs:
        text = os.fspath(spec)
        path = Path(text)
        if path.is_dir():
            inside = sorted(
                p
                for p in path.iterdir()
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
            )
            if not inside:
                raise BatchError(f"{text}: folder holds no images ({what})")
            found += inside
        elif path.exists():
            found.append(path)
        elif glob.has_magic(text):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True) if Path(m).is_file())
            if not matches:
                raise BatchError(f"{text}: matches no files ({what})")
            found += matches
        else:
            raise BatchError(f"{text}: no such file or folder ({what})")
    return _unique(found)


def _unique(paths: Iterable[Path]) -> list[Path]:
    seen: set[Path] = set()
    out = []
    for p in paths:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def cross_items(
    contents: Sequence[Path], styles: Sequence[Path], out_dir: Path, *, blend: bool = False
) -> list[BatchItem]:
    """Every content with every style, or with all styles as one blend when ``blend``."""
    sets = [tuple(styles)] if blend else [(s,) for s in styles]
    items = [BatchItem(c, s, out_dir / output_name(c, s)) for c in contents for s in sets]
    check_outputs(items)
    return items


def read_pairs(path: str | os.PathLike[str], out_dir: Path) -> list[BatchItem]:
    """Items from a CSV file with the columns ``content``, ``style`` and, optionally, ``output``.

    ``style`` may name several files separated by ``;`` (one blend). Paths are relative
    to the CSV file's folder, outputs to ``out_dir``. Files that do not exist are not an
    error here: those items fail when run, and the others go on.
    """
    csv_path = Path(path)
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise BatchError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BatchError(f"{path}: cannot read ({e})") from None
    rows = csv.DictReader(text.splitlines())
    columns = {c.strip().lower() for c in rows.fieldnames or ()}
    if not {"content", "style"} <= columns:
        raise BatchError(f"{path}: needs a header line with the columns content and style")
    base = csv_path.parent
    items = []
    for line, row in enumerate(rows, start=2):
        items.append(
            _pair(
                path,
                line,
                {k.strip().lower(): (v or "") for k, v in row.items() if k},
                base,
                out_dir,
            )
        )
    if not items:
        raise BatchError(f"{path}: lists no pairs")
    check_outputs(items)
    return list(dict.fromkeys(items))


def _pair(source: object, line: int, row: dict[str, str], base: Path, out_dir: Path) -> BatchItem:
    content = row.get("content", "").strip()
    styles = [s.strip() for s in row.get("style", "").split(PAIRS_STYLE_SEPARATOR) if s.strip()]
    if not content or not styles:
        raise BatchError(f"{source} line {line}: needs a content and at least one style")
    content_path = base / content
    style_paths = tuple(base / s for s in styles)
    output = row.get("output", "").strip()
    if output and Path(output).suffix.lower() != ".png":
        raise BatchError(
            f"{source} line {line}: output {output} must be a .png (it records the settings)"
        )
    out = out_dir / output if output else out_dir / output_name(content_path, style_paths)
    return BatchItem(content_path, style_paths, out)


def check_outputs(items: Sequence[BatchItem]) -> None:
    """Refuse two different items that would write the same output file."""
    owner: dict[Path, BatchItem] = {}
    for item in items:
        key = item.output.resolve()
        other = owner.setdefault(key, item)
        if other != item:
            raise BatchError(
                f"{other.content} and {item.content} would both be written to {item.output}; "
                "rename one, or name the outputs in a --pairs file"
            )
