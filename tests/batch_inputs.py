"""Tiny photos, a style and a broken file for the batch tests, cut from the bundled examples."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from impasto.examples import example_paths

# Settings small enough for a 2-core CPU: 32 px, two L-BFGS steps.
TINY = {"size": 32, "iterations": 2, "seed": 1}


def make_inputs(folder: Path) -> tuple[Path, Path]:
    """``folder/photos`` with 3 good 48x36 JPEGs and a truncated one; ``folder/style.png``."""
    content, style = example_paths()
    photo = Image.open(content).convert("RGB")
    photos = folder / "photos"
    photos.mkdir(parents=True)
    for i, box in enumerate([(0, 0, 200, 150), (50, 30, 250, 180), (100, 60, 300, 210)]):
        photo.crop(box).resize((48, 36)).save(photos / f"photo{i}.jpg", quality=90)
    data = (photos / "photo0.jpg").read_bytes()
    (photos / "broken.jpg").write_bytes(data[: len(data) // 2])
    style_path = folder / "style.png"
    Image.open(style).convert("RGB").resize((40, 40)).save(style_path)
    return photos, style_path
