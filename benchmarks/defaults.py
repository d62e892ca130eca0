"""How impasto's defaults were chosen: candidate settings on a set of content/style pairs.

    python benchmarks/defaults.py --size 256 --work /tmp/defaults
    python benchmarks/defaults.py --size 512 --pairs tubingen-starry_night \\
        --candidates defaults paper --pastiche-steps 500 --work /tmp/defaults

Every candidate runs on every pair; so does pastiche 1.6.0 with its own defaults (the
peer whose pictures looked more like paintings). Each output is measured with
``measure.Ruler``: the ``relu5_1`` Gram distance (a painting's large-scale structure:
lower is more painterly) and the ``relu4_2`` content distance (the photo's layout:
lower is more faithful), on one definition for every tool. Outputs are kept in
``--work`` and a run whose output is there is not run again, so an interrupted study
continues where it stopped. Writes ``benchmarks/results/defaults-<size>.json`` and
``.md``.

The machine is shared and its speed varies; times are for comparison within a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import Ruler, mean_abs_difference, run_pastiche  # noqa: E402

SHARED = HERE.parent.parent / "shared" / "images"
EXAMPLES = HERE.parent / "src" / "impasto" / "data"

# name: (content, styles); the shared photos are not part of the repository.
PAIRS: dict[str, tuple[Path, tuple[Path, ...]]] = {
    "tubingen-starry_night": (SHARED / "tubingen.jpg", (SHARED / "starry_night.jpg",)),
    "tubingen-the_scream": (SHARED / "tubingen.jpg", (SHARED / "the_scream.jpg",)),
    "tubingen-shipwreck": (SHARED / "tubingen.jpg", (SHARED / "shipwreck.jpg",)),
    "tubingen-matisse": (SHARED / "tubingen.jpg", (SHARED / "woman-with-hat-matisse.jpg",)),
    "tubingen-blend": (
        SHARED / "tubingen.jpg",
        (SHARED / "the_scream.jpg", SHARED / "starry_night.jpg"),
    ),
    "village-swirls": (EXAMPLES / "village.png", (EXAMPLES / "swirls.png",)),
}
STUDY_PAIRS = (
    "tubingen-starry_night",
    "tubingen-the_scream",
    "tubingen-shipwreck",
    "tubingen-matisse",
    "village-swirls",
)

# Settings of each candidate, on top of the paper's (impasto.Settings.paper()). "defaults"
# is impasto's defaults as they are, whatever they are when the script runs.
PHOTO = {"initial": "content", "tolerance": 1e-3}
C2F = {**PHOTO, "scales": 0, "min_size": 128}  # from 128 px, as first measured
RELATIVE = {**C2F, "style_layer_balance": "relative"}
CANDIDATES: dict[str, dict[str, Any] | None] = {
    "defaults": None,
    "paper": {},
    "photo": PHOTO,  # the previous defaults: the paper's from the photo, with the stop test
    "coarse-to-fine": C2F,
    "c2f-exp2": {**C2F, "style_layer_weight_exp": 2.0},
    "c2f-strength2": {**C2F, "strength": 2.0},
    "c2f-tv10": {**C2F, "tv_weight": 10.0},
    "c2f-avg": {**C2F, "pooling": "avg"},
    "relative": {**PHOTO, "style_layer_balance": "relative"},
    "c2f-relative": RELATIVE,
    "c2f-relative-s0.75": {**RELATIVE, "strength": 0.75},
    "c2f-relative-s0.5": {**RELATIVE, "strength": 0.5},
    "c2f256-relative-s0.5": {**RELATIVE, "strength": 0.5, "min_size": 256},
    "c2f-relative-s0.25": {**RELATIVE, "strength": 0.25},
    "c2f-relative-s2": {**RELATIVE, "strength": 2.0},
}


def candidate_settings(name: str, size: int, extra: dict[str, Any]) -> Any:
    import impasto

    spec = CANDIDATES[name]
    common = {"size": size, "seed": 0, **extra}
    if spec is None:
        return impasto.Settings(**common)
    return impasto.Settings.paper(**{**spec, **common})


def kept(work: Path, pair: str, name: str, size: int) -> Path:
    """Where run ``name`` on ``pair`` keeps its record; its image is the same name, .png."""
    return work / f"{pair}-{name}-{size}.json"


def run_impasto(pair: str, name: str, size: int, work: Path, extra: dict[str, Any]) -> dict:
    import impasto

    content, styles = PAIRS[pair]
    settings = candidate_settings(name, size, extra)
    result = impasto.stylize(content, list(styles), settings=settings)
    result.image.save(kept(work, pair, name, size).with_suffix(".png"))
    return {
        "seconds": result.seconds,
        "iterations": result.iterations,
        "scale_iterations": result.scale_iterations,
        "scale_sizes": result.scale_sizes,
        "stopped": str(result.stopped.value),
        "precision": result.precision,
        "losses": result.losses,
        "settings": settings.to_dict(),
    }


def make_run(pair: str, run: str, size: int, work: Path, steps: int, extra: dict) -> dict:
    """The record of candidate ``run`` (or ``pastiche``, for ``steps``) on ``pair``."""
    content, styles = PAIRS[pair]
    if run == "pastiche":

        def peer() -> dict:
            image = kept(work, pair, "pastiche", size).with_suffix(".png")
            seconds = run_pastiche(content, styles, size, steps, image)
            return {"seconds": seconds, "iterations": steps, "stopped": "done"}

        return measured(pair, "pastiche", size, work, peer)
    settings = same_run(candidate_settings(run, size, extra))
    return measured(
        pair, run, size, work, lambda: run_impasto(pair, run, size, work, extra), settings
    )


def same_run(settings: Any) -> dict:
    """``settings`` (impasto.Settings) as a dict in which settings that run alike are
    equal: ``initial`` resolved, only ``style_weight`` times ``strength``, which is all
    that reaches the loss, and none of the coarse scales' settings in a one-scale run."""
    same = settings.replace(
        initial=settings.resolved_initial(),
        style_weight=settings.style_weight * settings.strength,
        strength=1.0,
    ).to_dict()
    if settings.scales == 1:
        for name in ("min_size", "scale_ratio", "coarse_iterations"):
            same.pop(name)
    return same


def settings_of(record_path: Path) -> dict | None:
    """The settings a kept run ran with, as :func:`same_run` writes them; None for
    pastiche's runs and for a run not kept."""
    import impasto

    if not record_path.is_file():
        return None
    settings = json.loads(record_path.read_text()).get("settings")
    return same_run(impasto.Settings.from_dict(settings)) if settings else None


def copy_same_run(work: Path, pair: str, size: int, target: Path, settings: dict) -> None:
    """Keep another candidate's run on ``pair`` at ``size``, made with exactly
    ``settings``, as ``target``'s, if there is one.

    "defaults" is whatever the defaults are when the script runs: once a candidate has
    become the defaults, its run is theirs and is not made twice.
    """
    import shutil

    for other in sorted(work.glob(f"{pair}-*-{size}.json")):
        if other != target and settings_of(other) == settings:
            shutil.copyfile(other.with_suffix(".png"), target.with_suffix(".png"))
            shutil.copyfile(other, target)
            return


def measured(
    pair: str, name: str, size: int, work: Path, make: Any, settings: dict | None = None
) -> dict:
    """A run's record, from ``work`` if it was made before with ``settings`` (or, for an
    impasto run, under another name with the same settings), else made now and kept."""
    record_path = kept(work, pair, name, size)
    if settings is not None and settings_of(record_path) != settings:
        copy_same_run(work, pair, size, record_path, settings)
    if record_path.is_file() and (settings is None or settings_of(record_path) == settings):
        return json.loads(record_path.read_text())
    t = time.perf_counter()
    record = make()
    content, styles = PAIRS[pair]
    image = record_path.with_suffix(".png")
    record["distances"] = Ruler(content, list(styles))(image)
    record["photo_difference"] = mean_abs_difference(image, content)
    record_path.write_text(json.dumps(record, indent=1))
    print(
        f"{pair} {name} {size}: {time.perf_counter() - t:.0f} s, relu5_1 "
        f"{record['distances']['relu5_1']:.4g}, content {record['distances']['content']:.4g}",
        file=sys.stderr,
    )
    return record


def machine() -> dict[str, Any]:
    from impasto.devices import machine_facts

    return machine_facts()


def report(size: int, records: dict[str, dict[str, dict]], info: dict[str, Any]) -> str:
    """A table per pair, and each candidate's distances relative to pastiche's."""
    lines = [
        f"## {size} px",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, bf16: {info['bf16'] or 'no'}, "
        f"torch {info['torch']}, {info['date']}.",
        "",
        "relu5_1: Gram distance to the style (lower = more of the painting's large-scale "
        "structure); content: relu4_2 distance to the photo (lower = more faithful); "
        "ratios are to pastiche's on the same pair; photo: mean absolute difference from "
        "the photo, 0-255 (how strongly it is painted over).",
        "",
        "| pair | run | iterations | stopped | seconds | relu5_1 | content | relu5_1 / pastiche "
        "| content / pastiche | photo |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for pair, runs in records.items():
        peer = runs.get("pastiche")
        for name, r in runs.items():
            d = r["distances"]
            ratio5 = f"{d['relu5_1'] / peer['distances']['relu5_1']:.2f}" if peer else ""
            ratioc = f"{d['content'] / peer['distances']['content']:.2f}" if peer else ""
            its = str(r["iterations"])
            if len(r.get("scale_iterations", [])) > 1:
                its += " (" + "+".join(str(n) for n in r["scale_iterations"]) + ")"
            lines.append(
                f"| {pair} | {name} | {its} | {r.get('stopped', '')} | {r['seconds']:.0f} | "
                f"{d['relu5_1']:.4g} | {d['content']:.4g} | {ratio5} | {ratioc} | "
                f"{r['photo_difference']:.1f} |"
            )
    lines += ["", *summary(records)]
    return "\n".join(lines) + "\n"


def summary(records: dict[str, dict[str, dict]]) -> list[str]:
    """Geometric means over the pairs of each candidate's ratios to pastiche."""
    import math

    names = sorted({n for runs in records.values() for n in runs if n != "pastiche"})
    lines = [
        "| run | pairs | relu5_1 / pastiche (geometric mean) | content / pastiche | "
        "seconds (mean) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in names:
        rows = [(runs[name], runs.get("pastiche")) for runs in records.values() if name in runs]
        rows = [(r, p) for r, p in rows if p is not None]
        if not rows:
            continue

        def gmean(key: str, rows: list = rows) -> float:
            logs = [math.log(r["distances"][key] / p["distances"][key]) for r, p in rows]
            return math.exp(sum(logs) / len(logs))

        seconds = sum(r["seconds"] for r, _ in rows) / len(rows)
        lines.append(
            f"| {name} | {len(rows)} | {gmean('relu5_1'):.2f} | {gmean('content'):.2f} | "
            f"{seconds:.0f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--pairs", nargs="+", default=list(STUDY_PAIRS), choices=list(PAIRS))
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES))
    parser.add_argument("--pastiche-steps", type=int, default=500)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = impasto's)")
    parser.add_argument("--precision", default="auto", help="impasto's --precision")
    parser.add_argument("--work", type=Path, required=True, help="outputs are kept here")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument(
        "--report-only", action="store_true", help="tabulate the runs in --work, make none"
    )
    args = parser.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"the shared images are not at {SHARED}")
    unknown = [c for c in args.candidates if c not in CANDIDATES]
    if unknown:
        raise SystemExit(f"unknown candidates {unknown}; choose from {list(CANDIDATES)}")
    args.work.mkdir(parents=True, exist_ok=True)
    extra = {"threads": args.threads, "precision": args.precision}
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    records: dict[str, dict[str, dict]] = {}
    runs = (["pastiche"] if args.pastiche_steps else []) + args.candidates
    for pair in args.pairs:
        for run in runs:
            if args.report_only:
                record_path = kept(args.work, pair, run, args.size)
                if record_path.is_file():
                    records.setdefault(pair, {})[run] = json.loads(record_path.read_text())
                continue
            records.setdefault(pair, {})[run] = make_run(
                pair, run, args.size, args.work, args.pastiche_steps, extra
            )
    info = machine()
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"defaults-{args.size}"
    stem.with_suffix(".json").write_text(json.dumps({"machine": info, "runs": records}, indent=1))
    stem.with_suffix(".md").write_text(report(args.size, records, info))
    print(stem.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
