"""Saving a run between two iterations and resuming it to the same result.

The state holds everything the next iteration depends on: the settings, the input
images as decoded pixels (so moving or editing the files later changes nothing),
the scale, the iterate, the optimiser's memory and the best image so far.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import ImpastoError
from ..io.files import atomic_file
from ..optimize import Stylizer
from ..settings import TOLERANCE_WINDOW, Settings

STATE_FORMAT = "impasto-state"
# 3: impasto's own L-BFGS (ring-buffer history) replaced torch.optim.LBFGS.
# 4: the L-BFGS history is one buffer with the products of its pairs (compact form).
STATE_VERSION = 4


def _pixels(img: Image.Image | None) -> torch.Tensor | None:
    return None if img is None else torch.from_numpy(np.array(img))


def _image(pixels: torch.Tensor | None, mode: str) -> Image.Image | None:
    return None if pixels is None else Image.fromarray(pixels.numpy(), mode)


def save_state(
    st: Stylizer, path: str | os.PathLike[str], extra: dict[str, Any] | None = None
) -> None:
    """Write the state atomically (temporary file, then rename)."""
    data = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "settings": st.settings.to_dict(),
        "content": _pixels(st.content_image),
        "alpha": _pixels(st.alpha),
        "styles": [_pixels(img) for img in st.style_images],
        "content_masks": _mask_pixels(st.content_masks),
        "style_masks": _mask_pixels(st.style_masks),
        "content_source": _source(st.content_source),
        "style_sources": [_source(s) for s in st.style_sources],
        "scale": st.scale,
        "scale_runs": st.scale_runs,
        "scale_iteration": st.scale_iteration,
        "iteration": st.iteration,
        "x": st.x.detach().cpu(),
        "optimizer": st.optimizer.state_dict(),
        "best_x": st.best_x.cpu(),
        "best_total": st.best_total,
        "best_losses": st.best_losses,
        "recent": list(st._recent),
        "converged": st.converged,
        "last": getattr(st, "_last", {}),
        "history": st.history,
        "run_seconds": st.run_seconds,
        "extra": extra or {},
    }
    with atomic_file(path) as f:
        torch.save(data, f)


def _mask_pixels(masks: list[Image.Image] | None) -> list[torch.Tensor] | None:
    return None if masks is None else [torch.from_numpy(np.array(m)) for m in masks]


def _mask_images(pixels: list[torch.Tensor] | None) -> list[Image.Image] | None:
    return None if pixels is None else [Image.fromarray(p.numpy(), "L") for p in pixels]


def _source(source: object) -> str | None:
    return str(source) if isinstance(source, (str, os.PathLike)) else None


def load_state(path: str | os.PathLike[str], device: str | None = None) -> tuple[Stylizer, dict]:
    """A :class:`Stylizer` ready to continue where the saved one stopped, and the extras."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
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
    settings = Settings.from_dict(data["settings"], strict=False)
    if device:
        settings = settings.replace(device=device)
    content = _image(data["content"], "RGB")
    styles = [_image(p, "RGB") for p in data["styles"]]
    st = Stylizer(
        content,
        styles,
        settings,
        content_mask_images=_mask_images(data["content_masks"]),
        style_mask_images=_mask_images(data["style_masks"]),
        _start=False,
    )
    st.alpha = _image(data["alpha"], "L")
    st.content_source = data["content_source"]
    st.style_sources = data["style_sources"]
    st.scale_runs = list(data["scale_runs"])
    st.iteration = data["iteration"]
    st.history = list(data["history"])
    st.run_seconds = data["run_seconds"]
    st._enter_scale(data["scale"], data["x"].to(st.device))
    st.optimizer.load_state_dict(data["optimizer"])
    st.scale_iteration = data["scale_iteration"]
    st.best_x = data["best_x"].to(st.device)
    st.best_total = data["best_total"]
    st.best_losses = dict(data["best_losses"])
    st._recent = deque(data["recent"], maxlen=TOLERANCE_WINDOW + 1)
    st.converged = data["converged"]
    st._last = dict(data["last"])
    return st, dict(data["extra"])
