"""GPU check: 500 L-BFGS iterations at 512 px, and a 2048 px image, on a CUDA device.

    python benchmarks/gpu.py [--precision auto] [--compile]

Prints one JSON line per run with the device, precision, wall time and peak memory,
and writes them to benchmarks/results/gpu.json. Uses the bundled example images when
../shared/images is absent. Targets: under 5 s for the first run on an H100, under a
minute for the second.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

import impasto

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench import default_images  # noqa: E402


def run(size: int, settings: dict, content: Path, style: Path) -> dict:
    torch.cuda.reset_peak_memory_stats()
    st = impasto.Stylizer(content, style, impasto.Settings(size=size, seed=0, **settings))
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in st.run():
        pass
    torch.cuda.synchronize()
    wall = time.perf_counter() - t
    result = st.result()
    return {
        "device": torch.cuda.get_device_name(),
        "size": size,
        "settings": settings,
        "precision": str(st.amp_dtype),
        "iterations": result.iterations,
        "scale_iterations": result.scale_iterations,
        "wall_seconds": round(wall, 2),
        "setup_seconds": round(st.setup_seconds, 2),
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "total_loss": result.losses["total"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this check is for GPUs")
    content, style = default_images()
    common = {"precision": args.precision, "compile": args.compile, "device": "cuda"}
    runs = [
        (512, {**common, "scales": 1, "iterations": 500, "tolerance": 0}),
        (512, {**common, "scales": 1, "iterations": 500, "tolerance": 0, "precision": "fp32"}),
        (512, common),
        (2048, common),
    ]
    results = []
    run(128, {**common, "scales": 1, "iterations": 5}, content, style)  # warm-up
    for size, settings in runs:
        results.append(run(size, settings, content, style))
        print(json.dumps(results[-1]), flush=True)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "gpu.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
