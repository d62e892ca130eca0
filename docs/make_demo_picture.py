"""Make docs/demo.jpg: the bundled photo, the bundled painting and `impasto demo`'s result.

    python docs/make_demo_picture.py

Runs ``impasto demo`` (the command a new user runs first) into a temporary folder,
prints its timing line, and lays the three images side by side at 200 px high.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

from impasto.examples import example_paths

HERE = Path(__file__).resolve().parent
HEIGHT, GAP = 200, 8


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo.png"
        subprocess.run([sys.executable, "-m", "impasto", "demo", "-o", str(out)], check=True)
        panels = [Image.open(p).convert("RGB") for p in (*example_paths(), out)]
        panels = [p.resize((round(p.width * HEIGHT / p.height), HEIGHT)) for p in panels]
        width = sum(p.width for p in panels) + GAP * (len(panels) - 1)
        sheet = Image.new("RGB", (width, HEIGHT), "white")
        x = 0
        for p in panels:
            sheet.paste(p, (x, 0))
            x += p.width + GAP
        sheet.save(HERE / "demo.jpg", quality=90)
    print(f"wrote {HERE / 'demo.jpg'}")


if __name__ == "__main__":
    main()
