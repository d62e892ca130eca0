"""What every reader shares: checking its result, and saying what went wrong in one line."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ...errors import WeightsError
from ...io.files import sha256_file
from ..topology import CONV_CHANNELS

StateDict = dict[str, torch.Tensor]


def check_state_dict(state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise :class:`WeightsError` unless ``state`` holds all 16 VGG19 conv layers."""
    for name, (c_in, c_out) in CONV_CHANNELS.items():
        for suffix, shape in ((".weight", (c_out, c_in, 3, 3)), (".bias", (c_out,))):
            key = name + suffix
            tensor = state.get(key)
            if tensor is None:
                raise WeightsError(f"{source}: missing {key} (expected VGG19 with 16 conv layers)")
            if tuple(tensor.shape) != shape:
                raise WeightsError(
                    f"{source}: {key} has shape {tuple(tensor.shape)}, expected {shape}"
                )
            # Summing first is ~50x faster and still catches any NaN or inf.
            if not torch.isfinite(tensor.sum()):
                raise WeightsError(f"{source}: {key} contains NaN or infinite values")


def verify_sha256(path: Path, expected: str, remedy: str) -> None:
    """Raise :class:`WeightsError` unless the file's sha256 is ``expected``."""
    digest = sha256_file(path)
    if digest != expected:
        raise WeightsError(
            f"{path}: sha256 {digest[:12]}… does not match the expected {expected[:12]}…; {remedy}"
        )


def require(module: str, package: str, path: Path) -> Any:
    """Import an optional dependency only when its format is actually read."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise WeightsError(
            f"{path}: reading this format needs {package}: pip install {package}"
        ) from None


def as_float(value: Any, source: str | Path) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise WeightsError(f"{source}: expected tensors, found a {type(value).__name__}")
    return value.detach().to(torch.float32).contiguous()


def sample_keys(raw: Mapping[str, Any], n: int = 3) -> str:
    keys = [str(k) for k in list(raw)[:n]]
    more = ", ..." if len(raw) > n else ""
    return ", ".join(keys) + more


def one_line(error: BaseException, limit: int = 160) -> str:
    text = str(error).strip().splitlines()
    first = text[0].strip() if text else ""
    first = first if len(first) <= limit else first[: limit - 1] + "…"
    return f"{type(error).__name__}: {first}" if first else type(error).__name__
