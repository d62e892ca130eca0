"""Converted weights kept on disk, each file next to its own sha256."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ...io.files import atomic_file, sha256_file
from .checks import StateDict, check_state_dict


def cache_dir() -> Path:
    """Where converted weights are kept: $IMPASTO_CACHE_DIR or the user cache folder."""
    env = os.environ.get("IMPASTO_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("impasto"))


def read_cache(path: Path) -> StateDict | None:
    """The cached state dict, or None when missing or corrupt (it is then rebuilt)."""
    checksum = path.with_suffix(".sha256")
    if not (path.is_file() and checksum.is_file()):
        return None
    try:
        if checksum.read_text().strip() != sha256_file(path):
            return None
        state = torch.load(path, map_location="cpu", weights_only=True)
        check_state_dict(state, str(path))
    except Exception:  # any damage means: rebuild
        return None
    return state


def write_cache(path: Path, state: StateDict) -> None:
    """Write atomically; a cache that cannot be written only costs time later."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as f:
            torch.save(state, f)
        path.with_suffix(".sha256").write_text(sha256_file(path) + "\n")
    except OSError:
        pass
