"""Prints by exact tiled evaluation: exactness, memory and time against size.

    python benchmarks/tiled.py halo                    # gradient error and work against halo
    python benchmarks/tiled.py exact                   # 768 px: --tile 256 against --tile 0
    python benchmarks/tiled.py scale --sizes 512 1024 2048 4096 --untiled-up-to 1024
    python benchmarks/tiled.py gpu                     # 8192 px (50 MP) on a CUDA GPU

Every stylisation runs in a child process of this script, so that its peak memory
(``impasto.devices.peak_memory_bytes``: the process's own VmHWM on a CPU, the
allocator's peak on a GPU) is that run's alone. The photo and painting are the
paper's Fig. 2 pair from ../shared/images (the bundled examples where that folder is
absent), upscaled to the print size. Results go to ``benchmarks/results/tiled-*.json``
and ``.md``; docs/tiled.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "images"


def images() -> tuple[str, str]:
    if (SHARED / "tubingen.jpg").is_file():
        return str(SHARED / "tubingen.jpg"), str(SHARED / "starry_night.jpg")
    from impasto.examples import example_paths

    content, style = example_paths()
    return str(content), str(style)


def machine() -> dict[str, Any]:
    from impasto.devices import machine_facts

    return machine_facts()


# --- one run, in a child process --------------------------------------------------------


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One stylisation; its times, losses and peak memory (of this process only)."""
    import torch

    import impasto
    from impasto.devices import peak_memory_bytes

    t0 = time.perf_counter()
    st = impasto.Stylizer(spec["content"], spec["style"], impasto.Settings(**spec["settings"]))
    setup = time.perf_counter() - t0
    tiles = len(getattr(st.loss_fn, "tiles", ()))
    for _ in st.run():
        pass
    result = st.result()
    if spec.get("save"):
        result.save(spec["save"], overwrite=True)
    seconds = [h["seconds"] for h in result.history]
    steps = [b - a for a, b in zip([0.0, *seconds], seconds)]
    return {
        "name": spec["name"],
        "settings": spec["settings"],
        "size": list(st.schedule.sizes[-1]),
        "tile": st.settings.tile,
        "tiles": tiles,
        "precision": result.precision,
        "device": result.device,
        "setup_seconds": setup,
        "iteration_seconds": steps,
        # The first iteration also pays for allocations and kernel choices.
        "seconds_per_iteration": sum(steps[1:]) / len(steps[1:]) if len(steps) > 1 else steps[0],
        "wall_seconds": time.perf_counter() - t0,
        "losses": result.losses,
        "peak_memory_bytes": peak_memory_bytes(torch.device(result.device)),
    }


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    print(f"running {spec['name']} ...", file=sys.stderr, flush=True)
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], stdout=subprocess.PIPE, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"benchmark run {spec['name']} failed (status {proc.returncode})")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(result), file=sys.stderr, flush=True)
    return result


def spec(name: str, size: int, tile: int, iterations: int, args: argparse.Namespace) -> dict:
    content, style = images()
    settings = {
        "size": size,
        "tile": tile,
        "iterations": iterations,
        "seed": 0,
        "tolerance": 0,
        "precision": args.precision,
        "device": args.device,
    }
    return {"name": name, "content": content, "style": style, "settings": settings}


def gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def write(out: Path, name: str, data: dict[str, Any], lines: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"tiled-{name}.json").write_text(json.dumps(data, indent=1) + "\n")
    (out / f"tiled-{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def header(info: dict[str, Any], what: str) -> list[str]:
    where = info.get("gpu") or f"{info['cpu']} ({', '.join(info['cpu_flags'])})"
    return [
        f"## {what}",
        "",
        f"Machine: {where}, {info['cores']} cores, torch {info['torch']}, {info['date']}.",
        "",
    ]


# --- the measurements ---------------------------------------------------------------------


def exact(args: argparse.Namespace) -> None:
    """Tiled against untiled at 768 px: the images after 8 float32 L-BFGS iterations."""
    import numpy as np
    from PIL import Image

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for tile in (args.tile, 0):
            s = spec(f"{args.size} px, tile {tile}", args.size, tile, args.iterations, args)
            s["save"] = str(Path(tmp) / f"tile{tile}.png")
            runs[tile] = run_child(s)
            runs[tile]["pixels"] = np.asarray(Image.open(s["save"]).convert("RGB"), float)
    a, b = runs[args.tile].pop("pixels"), runs[0].pop("pixels")
    mad = float(np.abs(a - b).mean())
    ratio = runs[args.tile]["peak_memory_bytes"] / runs[0]["peak_memory_bytes"]
    info = machine()
    lines = [
        *header(info, f"Exactness: {args.size} px, {args.iterations} float32 L-BFGS iterations"),
        "| run | tiles | peak memory | s/iteration | total loss |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in runs.values():
        lines.append(
            f"| {r['name']} | {r['tiles'] or 1} | {gib(r['peak_memory_bytes'])} | "
            f"{r['seconds_per_iteration']:.1f} s | {r['losses']['total']:.6g} |"
        )
    lines += [
        "",
        f"Mean absolute difference of the two images (0-255): {mad:.3f}; largest: "
        f"{np.abs(a - b).max():.0f}. Peak memory tiled / untiled: {ratio:.2f}.",
    ]
    write(args.out, "exact", {"machine": info, "runs": runs, "mad": mad, "ratio": ratio}, lines)


def scale(args: argparse.Namespace) -> None:
    """Peak memory and time per iteration against size, tiled and (where it fits) untiled."""
    runs = []
    for size in args.sizes:
        n = args.iterations
        runs.append(run_child(spec(f"{size} px, tile {args.tile}", size, args.tile, n, args)))
        if size <= args.untiled_up_to:
            runs.append(run_child(spec(f"{size} px, untiled", size, 0, n, args)))
    info = machine()
    lines = [
        *header(info, f"Peak memory and time against size ({args.iterations} iterations)"),
        "| size | tile | tiles | peak memory | setup | s/iteration | tiled / untiled time |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    untiled = {r["size"][0] * r["size"][1]: r for r in runs if r["tile"] == 0}
    for r in runs:
        w, h = r["size"]
        other = untiled.get(w * h)
        overhead = (
            f"{r['seconds_per_iteration'] / other['seconds_per_iteration']:.2f}"
            if other and r["tile"]
            else ""
        )
        lines.append(
            f"| {w}x{h} | {r['tile'] or 'untiled'} | {r['tiles'] or 1} | "
            f"{gib(r['peak_memory_bytes'])} | {r['setup_seconds']:.0f} s | "
            f"{r['seconds_per_iteration']:.1f} s | {overhead} |"
        )
    write(args.out, args.name or "scale", {"machine": info, "runs": runs}, lines)


def gpu(args: argparse.Namespace) -> None:
    """The 50 MP target: a default multi-scale print at 8192 px on one CUDA GPU."""
    content, style = images()
    settings = {"size": args.size, "scales": 0, "seed": 0, "device": "cuda", "tile": args.tile}
    result = run_child(
        {"name": f"{args.size} px print", "content": content, "style": style, "settings": settings}
    )
    info = machine()
    lines = [
        *header(info, "A 50 MP print on one GPU (default settings, multi-scale)"),
        f"{result['size'][0]}x{result['size'][1]}, tile {result['tile']}: "
        f"{result['wall_seconds']:.0f} s in all, peak GPU memory "
        f"{gib(result['peak_memory_bytes'])}.",
    ]
    write(args.out, "gpu", {"machine": info, "runs": [result]}, lines)


def halo(args: argparse.Namespace) -> None:
    """Gradient error and work against the halo's width, at a size where both fit."""
    from impasto.run.tiling import full_halo

    pairs = [("tubingen.jpg", "starry_night.jpg"), ("the_scream.jpg", "shipwreck.jpg")]
    if not (SHARED / "the_scream.jpg").is_file():
        pairs = [tuple(Path(p).name for p in images())]  # type: ignore[list-item]
    rows = [halo_errors(pair, args) for pair in pairs]
    info = machine()
    full = full_halo(("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "relu4_2"))
    lines = [
        *header(info, f"Halo width: error against the untiled gradient ({args.size} px)"),
        f"Tiles of {args.tile} px, float32, after 3 iterations from the photo; the full "
        f"halo is {full} px. Work = pixels run through the network per pass / image pixels.",
        "",
        "| images | halo | work | gradient error (L2) | largest error / largest gradient "
        "| loss error |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for pair_rows in rows:
        for r in pair_rows:
            lines.append(
                f"| {' + '.join(r['images'])} | {r['halo']} px | {r['work']:.2f} | "
                f"{r['gradient_error']:.1e} | {r['largest_error']:.1e} | {r['loss_error']:.1e} |"
            )
    write(args.out, "halo", {"machine": info, "rows": rows}, lines)


def halo_errors(pair: tuple[str, str], args: argparse.Namespace) -> list[dict[str, Any]]:
    import impasto
    from impasto.run.tiled import TiledGatysLoss

    content, style = (str(SHARED / name) if SHARED.is_dir() else name for name in pair)
    settings = impasto.Settings(size=args.size, iterations=3, seed=1, tile=0, precision="fp32")
    st = impasto.Stylizer(content, [style], settings)
    for _ in st.run():
        pass
    x = st.x.detach().clone().requires_grad_(True)
    expected = st.evaluator(x)
    g = x.grad.clone()
    loss, targets, s = st.loss_fn, st.targets, st.settings
    size = (x.shape[-1], x.shape[-2])
    style_size = targets.inputs.style_size(0, max(size), s)
    rows = []
    for width in (0, 16, 32, 48, 64, 80):
        tiled = TiledGatysLoss(
            targets.net,
            targets.tensor(targets.inputs.content, size),
            [targets.tensor(targets.inputs.styles[0], style_size)],
            tile=args.tile,
            halo=width,
            content_weight=s.content_weight,
            content_layers=loss.content_layers,
            style_weight=s.style_weight * s.strength,
            style_layers=loss.style_layers,
            style_blend=s.style_blend(1),
            tv_weight=s.tv_weight,
            style_balance=s.style_layer_balance,
        )
        x.grad = None
        terms = tiled.evaluator(st.machine)(x)
        error = (x.grad - g).abs()
        rows.append(
            {
                "images": list(pair),
                "halo": width,
                "work": tiled.grid.padded_area() / (size[0] * size[1]),
                "gradient_error": float(error.norm() / g.norm()),
                "largest_error": float(error.max() / g.abs().max()),
                "loss_error": abs(terms.total.item() / expected.total.item() - 1),
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="?", choices=("halo", "exact", "scale", "gpu"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--tile", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--untiled-up-to", type=int, default=1024)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--name", help="results file name for scale (tiled-NAME.md)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    defaults = {
        "halo": (512, 256, 3),
        "exact": (768, 256, 8),
        "scale": (None, 512, 2),
        "gpu": (8192, 2048, None),
    }[args.what]
    args.size = args.size or defaults[0]
    args.tile = args.tile or defaults[1]
    args.iterations = args.iterations or defaults[2]
    {"halo": halo, "exact": exact, "scale": scale, "gpu": gpu}[args.what](args)


if __name__ == "__main__":
    main()
