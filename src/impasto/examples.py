"""Example images made by impasto itself (no third-party pictures, CC0).

``village.png`` is a drawn landscape; ``swirls.png`` a painting of brush strokes
following a field of vortices. They ship inside the package so that ``impasto demo``
works offline; ``python -m impasto.examples`` draws them again.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .settings import Settings

CONTENT_NAME = "village.png"
STYLE_NAME = "swirls.png"


def example_paths() -> tuple[Path, Path]:
    """(content, style) paths of the bundled example images."""
    folder = Path(str(resources.files("impasto").joinpath("data")))
    return folder / CONTENT_NAME, folder / STYLE_NAME


def demo_settings() -> Settings:
    """The defaults at 256 px (one scale: the coarse scales start at 256 px), about a
    minute on a 2-core CPU."""
    return Settings(size=256, seed=0)


def draw_village(width: int = 384, height: int = 256) -> Image.Image:
    y = np.linspace(0, 1, height)[:, None, None]
    sky = (1 - y) * np.array([70, 130, 210]) + y * np.array([200, 225, 245])
    img = Image.fromarray(np.broadcast_to(sky, (height, width, 3)).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    d.ellipse((width * 0.75, height * 0.08, width * 0.87, height * 0.26), fill=(255, 236, 150))
    xs = np.arange(width + 1)
    for base, amp, freq, colour in (
        (0.45, 0.08, 2.1, (96, 130, 110)),
        (0.58, 0.06, 3.3, (70, 120, 60)),
    ):
        ridge = height * (base + amp * np.sin(xs / width * freq * math.pi + base * 7))
        d.polygon([(0, height), *zip(xs.tolist(), ridge.tolist()), (width, height)], fill=colour)
    # A river winding to the front.
    river = [
        (
            width * (0.5 + 0.18 * math.sin(t * 3)) + (t - 0.5) * width * 0.3 * t,
            height * (0.62 + 0.38 * t),
        )
        for t in np.linspace(0, 1, 40)
    ]
    for i in range(len(river) - 1):
        d.line([river[i], river[i + 1]], fill=(80, 140, 200), width=int(6 + 40 * i / len(river)))
    # Houses along the bank.
    rng = np.random.default_rng(7)
    for i in range(7):
        x0 = width * (0.04 + 0.13 * i) + rng.uniform(-6, 6)
        w, h = rng.uniform(28, 40), rng.uniform(30, 46)
        y1 = height * 0.78 + rng.uniform(-8, 8)
        wall = tuple(int(c) for c in rng.integers(170, 245, 3))
        d.rectangle((x0, y1 - h, x0 + w, y1), fill=wall, outline=(60, 50, 40))
        d.polygon(
            [(x0 - 4, y1 - h), (x0 + w / 2, y1 - h - w * 0.6), (x0 + w + 4, y1 - h)],
            fill=(160, 60, 40),
            outline=(90, 30, 20),
        )
        for wx in (x0 + w * 0.2, x0 + w * 0.6):
            d.rectangle((wx, y1 - h * 0.7, wx + w * 0.2, y1 - h * 0.45), fill=(50, 60, 90))
    for i in range(9):  # trees
        x0 = width * (0.02 + 0.11 * i) + 10
        y1 = height * 0.98
        d.rectangle((x0 - 2, y1 - 22, x0 + 2, y1), fill=(90, 60, 30))
        d.ellipse((x0 - 12, y1 - 50, x0 + 12, y1 - 18), fill=(40, 100 + 10 * (i % 3), 40))
    return img.filter(ImageFilter.SMOOTH)


def draw_swirls(size: int = 384, strokes: int = 2600, seed: int = 3) -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (size, size), (18, 32, 78))
    d = ImageDraw.Draw(img)
    centres = rng.uniform(0.1, 0.9, (5, 2)) * size
    spins = rng.choice([-1.0, 1.0], 5) * rng.uniform(0.6, 1.4, 5)
    palette = np.array(
        [
            (250, 215, 70),
            (240, 240, 200),
            (60, 110, 200),
            (30, 60, 150),
            (120, 180, 230),
            (230, 160, 40),
        ]
    )

    def flow(p: np.ndarray) -> np.ndarray:
        v = np.array([0.35, 0.05])
        for c, s in zip(centres, spins):
            r = p - c
            dist2 = (r**2).sum() + 400.0
            v = v + s * np.array([-r[1], r[0]]) / dist2 * 60.0
        return v / (np.linalg.norm(v) + 1e-9)

    for _ in range(strokes):
        p = rng.uniform(0, size, 2)
        colour = palette[rng.choice(len(palette), p=[0.2, 0.1, 0.25, 0.2, 0.15, 0.1])]
        colour = tuple(int(c) for c in np.clip(colour + rng.normal(0, 12, 3), 0, 255))
        pts = [tuple(p)]
        for _ in range(int(rng.integers(4, 10))):
            p = p + flow(p) * 4.0
            pts.append(tuple(p))
        d.line(pts, fill=colour, width=int(rng.integers(2, 6)), joint="curve")
    return img


def main() -> None:
    content, style = example_paths()
    draw_village().save(content)
    draw_swirls().save(style)
    print(f"wrote {content} and {style}")


if __name__ == "__main__":
    main()
