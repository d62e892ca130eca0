from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "images"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests never touch the user's cache; the converted weights are built once per run."""
    if "IMPASTO_CACHE_DIR" not in os.environ:
        os.environ["IMPASTO_CACHE_DIR"] = str(tmp_path_factory.mktemp("impasto-cache"))


@pytest.fixture(scope="session")
def examples() -> tuple[Path, Path]:
    from impasto.examples import example_paths

    return example_paths()


@pytest.fixture(scope="session")
def shared_images() -> Path:
    if not (SHARED_IMAGES / "tubingen.jpg").is_file():
        pytest.skip(f"real test images not found at {SHARED_IMAGES}")
    return SHARED_IMAGES
