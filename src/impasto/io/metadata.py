"""Provenance embedded in output PNGs, so a result can be reproduced from the file alone."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import ImageError
from .files import sha256_file

PNG_KEY = "impasto"


def describe_input(source: object) -> dict[str, Any] | None:
    """Path and checksum of a file input; None for in-memory images."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).resolve()
        return {"path": str(path), "sha256": sha256_file(path) if path.is_file() else None}
    return None


def provenance(
    version: str,
    settings: dict[str, Any],
    content: object,
    styles: list[object],
    losses: dict[str, float],
    iterations: int,
) -> dict[str, Any]:
    return {
        "impasto": version,
        "settings": settings,
        "content": describe_input(content),
        "styles": [describe_input(s) for s in styles],
        "losses": losses,
        "iterations": iterations,
    }


def read_provenance(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The provenance a PNG written by impasto carries."""
    try:
        with Image.open(path) as img:
            text = getattr(img, "text", {}) or {}
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot read image ({e})") from None
    if PNG_KEY not in text:
        raise ImageError(f"{path}: carries no impasto settings (only PNGs written by impasto do)")
    try:
        data = json.loads(text[PNG_KEY])
    except json.JSONDecodeError:
        raise ImageError(f"{path}: impasto settings in the file are damaged") from None
    if not isinstance(data, dict) or "settings" not in data:
        raise ImageError(f"{path}: impasto settings in the file are incomplete")
    return data
