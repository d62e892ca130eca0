"""Saving a run between two iterations and resuming it to the same result.

The state file holds everything the next iteration depends on: the settings, the
input images as decoded pixels (so moving or editing the files later changes
nothing), and the loop's own state (:meth:`Stylizer.state_dict`: the scale, the
iterate, the optimiser's memory and the best image so far).
"""

from __future__ import annotations

import io
import os
from typing import Any, BinaryIO

import numpy as np
import torch
from PIL import Image

from ..errors import ImpastoError
from ..io.files import atomic_file
from ..settings import Settings
from .loop import Stylizer

STATE_FORMAT = "impasto-state"
# 3: impasto's own L-BFGS (ring-buffer history) replaced torch.optim.LBFGS.
# 4: the L-BFGS history is one buffer with the products of its pairs (compact form).
STATE_VERSION = 4


def _pixels(img: Image.Image | None) -> torch.Tensor | None:
    return None if img is None else torch.from_numpy(np.array(img))


def _image(pixels: torch.Tensor | None, mode: str) -> Image.Image | None:
    return None if pixels is None else Image.fromarray(pixels.numpy(), mode)


def _images(pixels: list[torch.Tensor] | None, mode: str) -> list[Image.Image] | None:
    return None if pixels is None else [Image.fromarray(p.numpy(), mode) for p in pixels]


def _source(source: object) -> str | None:
    return str(source) if isinstance(source, (str, os.PathLike)) else None


def save_state(
    st: Stylizer, path: str | os.PathLike[str], extra: dict[str, Any] | None = None
) -> None:
    """Write the state atomically (temporary file, then rename)."""
    with atomic_file(path) as f:
        _write(st, f, extra)


def state_bytes(st: Stylizer) -> bytes:
    """The state as the bytes of a state file (to send it to another machine)."""
    buffer = io.BytesIO()
    _write(st, buffer, None)
    return buffer.getvalue()


def _write(st: Stylizer, f: BinaryIO, extra: dict[str, Any] | None) -> None:
    inputs = st.inputs
    data = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "settings": st.settings.to_dict(),
        "content": _pixels(inputs.content),
        "alpha": _pixels(inputs.alpha),
        "styles": [_pixels(img) for img in inputs.styles],
        "content_masks": inputs.content_masks and [_pixels(m) for m in inputs.content_masks],
        "style_masks": inputs.style_masks and [_pixels(m) for m in inputs.style_masks],
        "content_source": _source(inputs.content_source),
        "style_sources": [_source(s) for s in inputs.style_sources],
        **st.state_dict(),
        "extra": extra or {},
    }
    torch.save(data, f)


def read_state(path: str | os.PathLike[str] | bytes) -> dict[str, Any]:
    """The contents of a state file (or its bytes), checked to be one this version reads."""
    source: Any = path
    if isinstance(path, bytes):
        source, path = io.BytesIO(path), "the saved state"
    try:
        data = torch.load(source, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ImpastoError(f"{path}: no such file") from None
    except Exception as e:  # any damage: say so in one line
        raise ImpastoError(
            f"{path}: not a readable impasto state file ({type(e).__name__})"
        ) from None
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise ImpastoError(f"{path}: not an impasto state file")
    if data.get("version") != STATE_VERSION:
        raise ImpastoError(
            f"{path}: state version {data.get('version')} is not supported "
            f"(this impasto reads version {STATE_VERSION}; start the run again)"
        )
    return data


def load_state(
    path: str | os.PathLike[str] | bytes, device: str | None = None
) -> tuple[Stylizer, dict]:
    """A :class:`Stylizer` ready to continue where the saved one stopped (from a state
    file, or its bytes), and the extras."""
    data = read_state(path)
    settings = Settings.from_dict(data["settings"], strict=False)
    if device:
        settings = settings.replace(device=device)
    st = Stylizer(
        _image(data["content"], "RGB"),
        [_image(p, "RGB") for p in data["styles"]],
        settings,
        content_mask_images=_images(data["content_masks"], "L"),
        style_mask_images=_images(data["style_masks"], "L"),
        state=data,
    )
    st.inputs.alpha = _image(data["alpha"], "L")
    st.inputs.content_source = data["content_source"]
    st.inputs.style_sources = data["style_sources"]
    return st, dict(data["extra"])
