"""Make the README pictures of the perceptual controls (colour, space, scale).

    python docs/controls/make_pictures.py [IMAGES_DIR] [WORK_DIR]

IMAGES_DIR holds tubingen.jpg, starry_night.jpg and shipwreck.jpg (default
../shared/images); they are read, never copied into the repository. Every picture
is made by the ``impasto`` command, whose exact command lines are printed; impasto
writes PNGs (with their settings embedded) to WORK_DIR, and this script converts
them to small JPEGs next to itself, plus a labelled comparison, controls.jpg.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

HERE = Path(__file__).resolve().parent
COMMON = [
    "--size", "192", "--scales", "2", "--min-size", "128",
    "--coarse-iterations", "100", "--iterations", "80",
    "--initial", "content", "--seed", "1", "--overwrite", "-q",
]  # fmt: skip


def sky_mask(photo: Path, out: Path) -> None:
    """White on the sky of tubingen.jpg: blue, bright pixels connected to the top edge."""
    rgb = np.asarray(Image.open(photo).convert("RGB"), dtype=np.int32)
    r, b = rgb[..., 0], rgb[..., 2]
    sky = (b > r + 25) & (b > 120)
    sky[int(0.62 * len(sky)) :] = False
    mask = Image.fromarray((sky * 255).astype(np.uint8)).filter(ImageFilter.MedianFilter(5))
    top = next(x for x in range(mask.width) if mask.getpixel((x, 2)) == 255)
    ImageDraw.floodfill(mask, (top, 2), 128)
    connected = (np.asarray(mask) == 128).astype(np.uint8) * 255
    Image.fromarray(connected).filter(ImageFilter.GaussianBlur(3)).save(out)


def impasto(*args: str) -> None:
    command = ["impasto", "stylize", *args, *COMMON]
    print("$", shlex.join(command), flush=True)
    subprocess.run(command, check=True)


def main() -> None:
    images = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/images")
    work = Path(sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="impasto-docs-"))
    work.mkdir(parents=True, exist_ok=True)
    photo, starry, wreck = (
        images / n for n in ("tubingen.jpg", "starry_night.jpg", "shipwreck.jpg")
    )
    sky, ground = work / "sky.png", work / "ground.png"
    sky_mask(photo, sky)
    ImageOps.invert(Image.open(sky)).save(ground)

    runs = {
        "plain": [str(photo), str(starry)],
        "preserve_colors": [str(photo), str(starry), "--preserve-colors"],
        "luminance": [str(photo), str(starry), "--color-control", "luminance"],
        "histogram": [str(photo), str(starry), "--color-control", "histogram"],
        # Sky in the style of The Starry Night, the rest in that of The Shipwreck.
        "spatial": [str(photo), str(starry), str(wreck), "--content-mask", str(sky), str(ground)],
        # Fine texture of The Starry Night, coarse structure of The Shipwreck.
        "scale": [
            str(photo), str(starry), str(wreck),
            "--style-layers-per-style", "relu1_1,relu2_1", "relu3_1,relu4_1,relu5_1",
        ],
    }  # fmt: skip
    for name, args in runs.items():
        impasto(*args, "-o", str(work / f"{name}.png"))
        Image.open(work / f"{name}.png").convert("RGB").save(HERE / f"{name}.jpg", quality=90)

    tiles = {
        # Outputs only: the photo itself is an input, not ours to redistribute here.
        "plain transfer": Image.open(work / "plain.png"),
        "post-hoc colours": Image.open(work / "preserve_colors.png"),
        "luminance only": Image.open(work / "luminance.png"),
        "histogram matched": Image.open(work / "histogram.png"),
        "sky mask": Image.open(sky),
        "sky / ground masks": Image.open(work / "spatial.png"),
        "fine / coarse styles": Image.open(work / "scale.png"),
    }
    comparison(tiles).save(HERE / "controls.jpg", quality=90)


def comparison(tiles: dict[str, Image.Image], columns: int = 4) -> Image.Image:
    w, h = next(iter(tiles.values())).size
    label = 14
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * w, rows * (h + label)), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (name, tile) in enumerate(tiles.items()):
        x, y = (k % columns) * w, (k // columns) * (h + label)
        sheet.paste(tile.convert("RGB").resize((w, h)), (x, y + label))
        draw.text((x + 3, y + 1), name, fill="black")
    return sheet


if __name__ == "__main__":
    main()
