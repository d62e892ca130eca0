"""Throughput of ``impasto batch`` in one process and on Ray, on the same machine.

    python benchmarks/ray_batch.py --size 512 --iterations 5

Runs the same batch (every content image with one style, a fixed number of L-BFGS
iterations, no early stop) as separate ``impasto batch`` commands:

- ``process``: in the command's own process (the default);
- ``ray``: ``--ray`` with a local Ray instance started by the command, one task at a
  time holding all the machine's cores (the cost of Ray itself);
- ``ray-1cpu``: ``--ray --task-cpus 1``, as many one-thread tasks at once as cores.

Each command's wall time includes starting Python, torch and (for Ray) the local
instance; the batch's own time (the report's ``seconds``) starts once the cluster is
joined. Images per hour are given for both. Writes ``benchmarks/results/<name>.json``
and ``.md``. Ray is kept on the loopback address.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "images"
CONTENTS = ("tubingen.jpg", "shipwreck.jpg", "the_scream.jpg", "woman-with-hat-matisse.jpg")
STYLE = "starry_night.jpg"
MODES = {"process": [], "ray": ["--ray"], "ray-1cpu": ["--ray", "--task-cpus", "1"]}
LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}


def machine() -> dict[str, Any]:
    """What the numbers were measured on, and the Ray version."""
    import ray

    from impasto.devices import machine_facts

    return {**machine_facts(), "ray": ray.__version__}


def run_mode(name: str, contents: list[Path], style: Path, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="ray-batch-") as tmp:
        report = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "impasto", "batch", *map(str, contents)]
        command += ["--styles", str(style), "-o", str(Path(tmp) / "out"), "--report", str(report)]
        command += ["--size", str(args.size), "--iterations", str(args.iterations)]
        command += ["--tolerance", "0", "--seed", "1", "-q", *MODES[name]]
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        done = subprocess.run(
            command, env={**os.environ, **LOOPBACK}, capture_output=True, text=True
        )
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"{name}: exit {done.returncode}\n{done.stderr[-3000:]}")
        data = json.loads(report.read_text())
    items = data["items"]
    n = len(items)
    return {
        "mode": name,
        "images": n,
        "wall_seconds": round(wall, 1),
        "batch_seconds": data["seconds"],
        "images_per_hour_wall": round(n / wall * 3600, 1),
        "images_per_hour_batch": round(n / data["seconds"] * 3600, 1),
        "item_seconds": [i["seconds"] for i in items],
        "peak_memory_mb": [round(i["peak_memory_bytes"] / 2**20) for i in items],
        "nodes": sorted({i["node_id"] for i in items if i["node_id"]}),
        # Load of the machine (1-minute average) before and after: other work shares the CPU.
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
    }


def table(runs: list[dict], args: argparse.Namespace, info: dict[str, Any]) -> str:
    lines = [
        f"# impasto batch: one process vs Ray, {args.size} px, {args.iterations} iterations",
        "",
        f"{info['cpu']}, {info['cores']} cores, flags {' '.join(info['cpu_flags'])}; "
        f"torch {info['torch']}, Ray {info['ray']}; {info['date']}.",
        "",
        "| mode | images | command wall s | batch s | images/hour (wall) | images/hour (batch) "
        "| seconds per item | peak MiB per item | load before, after |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        lines.append(
            f"| {r['mode']} | {r['images']} | {r['wall_seconds']} | {r['batch_seconds']} "
            f"| {r['images_per_hour_wall']} | {r['images_per_hour_batch']} "
            f"| {', '.join(f'{s:.1f}' for s in r['item_seconds'])} "
            f"| {', '.join(str(m) for m in r['peak_memory_mb'])} "
            f"| {', '.join(str(x) for x in r.get('load_average', []))} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=SHARED)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument(
        "--name", default=None, help="results file name (default: ray-batch-cpu-SIZE)"
    )
    args = parser.parse_args()
    contents = [args.images / c for c in CONTENTS]
    if not all(p.is_file() for p in [*contents, args.images / STYLE]):
        raise SystemExit(f"needs {', '.join(CONTENTS)} and {STYLE} in {args.images}")
    info = machine()
    runs = []
    for mode in args.modes:
        runs.append(run_mode(mode, contents, args.images / STYLE, args))
        print(json.dumps(runs[-1]), flush=True)
    name = args.name or f"ray-batch-cpu-{args.size}"
    out = HERE / "results"
    settings = {"size": args.size, "iterations": args.iterations, "tolerance": 0, "seed": 1}
    (out / f"{name}.json").write_text(
        json.dumps({"machine": info, "settings": settings, "runs": runs}, indent=2) + "\n"
    )
    (out / f"{name}.md").write_text(table(runs, args, info))
    print(table(runs, args, info))


if __name__ == "__main__":
    main()
