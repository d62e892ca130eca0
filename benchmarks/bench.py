"""Time to quality: impasto's defaults, the paper's setting, and pastiche, side by side.

    python benchmarks/bench.py --sizes 256 512

Runs impasto with its default settings; impasto with the paper's setting (500
single-scale L-BFGS iterations from white noise) at the default precision and in
float32; and pastiche 1.6.0. Every run happens in a child process of this script (so
peak memory is measured per run) on the same machine, images, size and weights.
Every output, and every point of the loss-versus-time curves, whatever tool made it,
is scored by ``impasto.score`` (float32, 8-bit image, final size), so the tools are
compared on one definition. Writes ``benchmarks/results/bench-<size>.md`` and
``.json``, and a loss-versus-time plot ``bench-<size>.png`` when matplotlib is
installed.
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


def default_images() -> tuple[Path, Path]:
    if (SHARED / "tubingen.jpg").is_file():
        return SHARED / "tubingen.jpg", SHARED / "starry_night.jpg"
    from impasto.examples import example_paths

    return example_paths()


# --- measurements of the machine ----------------------------------------------------


def matmul_gflops(dtype: str = "float32", n: int = 2048, repeats: int = 10) -> float:
    """Attainable matmul rate of this machine in ``dtype``, the best of several products."""
    import torch

    a = torch.randn(n, n, dtype=getattr(torch, dtype))
    b = torch.randn(n, n, dtype=getattr(torch, dtype))
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def flops_per_iteration(content: Path, style: Path, size: int) -> float:
    """FLOPs of one forward + backward of impasto's loss at ``size``, counted by PyTorch."""
    from torch.utils.flop_counter import FlopCounterMode

    import impasto

    st = impasto.Stylizer(content, style, impasto.Settings(size=size, scales=1, seed=0))
    with FlopCounterMode(display=False) as counter:
        st.evaluator(st.x)
    return float(counter.get_total_flops())


def machine() -> dict[str, Any]:
    from impasto.devices import machine_facts

    return machine_facts()


# --- children: one run each ------------------------------------------------------------


def child_impasto(spec: dict[str, Any]) -> dict[str, Any]:
    import torch.nn.functional as F

    import impasto
    from impasto.io.images import to_pil

    settings = impasto.Settings.from_dict(spec["settings"])
    st = impasto.Stylizer(spec["content"], spec["style"], settings)
    final = st.schedule.sizes[-1]

    def snapshot(x: Any) -> Any:
        """An iterate as it would be saved, at the final size."""
        if x.shape[-2:] != (final[1], final[0]):
            x = F.interpolate(x, size=(final[1], final[0]), mode="bicubic", align_corners=False)
        return to_pil(x)

    snapshots = [(0.0, snapshot(st.best.x))]
    pausing = 0.0  # time spent taking snapshots, excluded from the timings
    final_start = 0.0  # when the final scale began
    t0 = time.perf_counter()
    every = spec["score_every"]
    for p in st.run():
        if p.scale < p.scales - 1:
            final_start = time.perf_counter() - t0 - pausing
        if p.iteration % every == 0:
            t = time.perf_counter()
            snapshots.append((t - t0 - pausing, snapshot(st.best.x)))
            pausing += time.perf_counter() - t
    wall = time.perf_counter() - t0 - pausing
    result = st.result()
    del st
    # Every point is scored afterwards, in float32, on the 8-bit image: the definition
    # of the final score, whatever precision the run used.
    curve = [
        (t, impasto.score(img, spec["content"], spec["style"])["total"]) for t, img in snapshots
    ]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.png"
        result.save(out)
        final_score = impasto.score(out, spec["content"], spec["style"])
    if spec.get("save"):
        result.image.save(spec["save"], quality=90)
    curve.append((wall, final_score["total"]))
    final_iters = result.scale_iterations[-1]
    final_time = wall - final_start
    return {
        "iterations": result.iterations,
        "scale_iterations": result.scale_iterations,
        "scale_sizes": result.scale_sizes,
        "wall": wall,
        "final_scale_seconds_per_iteration": final_time / max(final_iters, 1),
        "score": final_score,
        "curve": curve,
    }


def child_pastiche(spec: dict[str, Any]) -> dict[str, Any]:
    import torch
    from pastiche.pastiche import PasticheArtist, save_image

    import impasto
    from impasto.io.images import load_image, size_for

    content_img = load_image(spec["content"])
    w, h = size_for(content_img, spec["size"])
    torch.set_num_threads(torch.get_num_threads())
    artist = PasticheArtist(spec["content"], [spec["style"]], size=[h, w], device="cpu")
    settings = impasto.Settings()
    tmp = Path(tempfile.mkdtemp())

    def score_now() -> float:
        save_image(artist.pastiche.detach(), str(tmp / "p.png"))
        return impasto.score(tmp / "p.png", spec["content"], spec["style"], settings)["total"]

    curve = [(0.0, score_now())]
    scoring = 0.0
    t0 = time.perf_counter()
    for i in range(1, spec["iterations"] + 1):
        artist.draw()
        if i % spec["score_every"] == 0:
            t = time.perf_counter()
            curve.append((t - t0 - scoring, score_now()))
            scoring += time.perf_counter() - t
    wall = time.perf_counter() - t0 - scoring
    save_image(artist.pastiche.detach(), str(tmp / "p.png"))
    final_score = impasto.score(tmp / "p.png", spec["content"], spec["style"], settings)
    if spec.get("save"):
        Path(spec["save"]).write_bytes((tmp / "p.png").read_bytes())
    return {
        "iterations": spec["iterations"],
        "wall": wall,
        "final_scale_seconds_per_iteration": wall / spec["iterations"],
        "score": final_score,
        "curve": curve,
    }


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one benchmark in a fresh process; peak memory comes from that process alone."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", json.dumps(spec)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    status = proc.wait()
    if status != 0:
        raise SystemExit(f"benchmark run {spec['name']} failed (status {status})")
    return json.loads(out.strip().splitlines()[-1])


# --- the report ----------------------------------------------------------------------------


def run_name(key: str, iterations: int) -> str:
    return {
        "default": "impasto, default settings",
        "single": f"impasto, paper's setting ({iterations} L-BFGS iterations from noise)",
        "single-fp32": f"impasto, paper's setting in float32 ({iterations} iterations)",
        "pastiche": f"pastiche 1.6.0 ({iterations} L-BFGS iterations)",
    }[key]


def time_to_reach(curve: list[list[float]], target: float) -> float | None:
    """The first time in a loss-versus-time curve at which the loss is at or below ``target``."""
    return next((t for t, loss in curve if loss <= target), None)


def write_report(size: int, runs: list[dict[str, Any]], info: dict[str, Any], out: Path) -> None:
    flops, gflops = info["flops_per_iteration"], info["matmul_gflops"]
    ideal = flops / (gflops * 1e9)
    lines = [
        f"## {size} px (long side)",
        "",
        f"Machine: {info['machine']['cpu']}, {info['machine']['cores']} cores, "
        f"torch {info['machine']['torch']}. Measured matmul: {gflops:.0f} GFLOP/s in float32, "
        f"{info.get('matmul_gflops_bf16', 0):.0f} GFLOP/s in bf16. "
        f"VGG19 forward+backward at {size} px: {flops / 1e9:.1f} GFLOP per iteration, "
        f"{ideal:.2f} s at the float32 matmul rate (efficiency = that / s per iteration).",
        "",
        "| run | precision | iterations | s/iteration at final size | efficiency | wall time | "
        "peak RSS | final score (impasto loss) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        spi = r["final_scale_seconds_per_iteration"]
        iters = str(r["iterations"])
        if r.get("scale_sizes") and len(r["scale_sizes"]) > 1:
            iters += (
                " ("
                + " + ".join(f"{n}@{s}" for n, s in zip(r["scale_iterations"], r["scale_sizes"]))
                + ")"
            )
        lines.append(
            f"| {r['name']} | {r.get('precision', 'fp32')} | {iters} | {spi:.3f} s | "
            f"{ideal / spi:.0%} | {r['wall']:.1f} s | "
            f"{r['peak_rss_bytes'] / 2**20:.0f} MiB | {r['score']['total']:.4g} |"
        )
    by_key = {r["key"]: r for r in runs}
    for key in ("single", "single-fp32"):
        reference = by_key.get(key)
        if not reference:
            continue
        target, wall = reference["score"]["total"], reference["wall"]
        lines += [
            "",
            f"Time to reach the final score of {reference['name']}, {target:.4g}, "
            f"which it reached after {wall:.1f} s:",
            "",
        ]
        for r in runs:
            if r is reference:
                continue
            t = time_to_reach(r["curve"], target)
            reached = "not reached" if t is None else f"{t:.1f} s, {t / wall:.0%} of that time"
            lines.append(f"- {r['name']}: {reached}")
    lines.append("")
    (out / f"bench-{size}.md").write_text("\n".join(lines))
    (out / f"bench-{size}.json").write_text(json.dumps({"info": info, "runs": runs}, indent=1))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (pip install matplotlib)", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for r in runs:
        t, loss = zip(*r["curve"])
        ax.plot(t, loss, label=r["name"], marker=".", markersize=3)
    ax.set_yscale("log")
    ax.set_xlabel("seconds (scoring excluded)")
    ax.set_ylabel(f"impasto loss at {size} px")
    ax.set_title(f"Loss versus time, {size} px, {info['machine']['cores']}-core CPU")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / f"bench-{size}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument(
        "--reference-iterations",
        type=int,
        default=500,
        help="single-scale L-BFGS iterations (the paper's setting)",
    )
    parser.add_argument(
        "--fp32-iterations",
        type=int,
        default=100,
        help="iterations of the float32 single-scale run (the paper's arithmetic)",
    )
    parser.add_argument("--peer-iterations", type=int, default=500, help="pastiche iterations")
    parser.add_argument("--score-every", type=int, default=25)
    parser.add_argument(
        "--only",
        nargs="+",
        choices=("default", "single", "single-fp32", "pastiche"),
        default=("default", "single", "single-fp32", "pastiche"),
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument(
        "--replot", action="store_true", help="only rewrite the reports from the saved JSON"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.replot:  # rewrite the report and plot of an earlier run from its JSON
        for size in args.sizes:
            saved = json.loads((args.out / f"bench-{size}.json").read_text())
            for r in saved["runs"]:
                r["name"] = run_name(r["key"], r["iterations"])
            write_report(size, saved["runs"], saved["info"], args.out)
        return
    if args.child:
        spec = json.loads(args.child)
        result = (child_pastiche if spec["tool"] == "pastiche" else child_impasto)(spec)
        # Measured here, in the run's own process: the parent's view of a child's
        # peak (wait4's ru_maxrss) would include this script's own peak.
        import torch

        from impasto.devices import peak_memory_bytes

        result["peak_rss_bytes"] = peak_memory_bytes(torch.device("cpu"))
        print(json.dumps(result))
        return

    content, style = default_images()
    args.out.mkdir(parents=True, exist_ok=True)
    info_base = {
        "machine": machine(),
        "matmul_gflops": matmul_gflops("float32"),
        "matmul_gflops_bf16": matmul_gflops("bfloat16"),
        "content": content.name,
        "style": style.name,
    }
    print(json.dumps(info_base), file=sys.stderr)
    import torch

    from impasto.devices import resolve_device, resolve_precision

    default_precision = resolve_precision("auto", resolve_device("auto"))
    default_name = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[default_precision]
    for size in args.sizes:
        info = {**info_base, "flops_per_iteration": flops_per_iteration(content, style, size)}
        common = {
            "content": str(content),
            "style": str(style),
            "size": size,
            "score_every": args.score_every,
        }
        # The paper's setting: single-scale L-BFGS from white noise, every iteration run.
        from impasto.settings import PAPER_SETTINGS

        single = {**PAPER_SETTINGS, "size": size, "seed": 0}
        specs = {
            "default": {
                **common,
                "name": run_name("default", 0),
                "tool": "impasto",
                "precision": default_name,
                "settings": {"size": size, "seed": 0},
                "save": str(args.out / f"impasto-default-{size}.jpg"),
            },
            "single": {
                **common,
                "name": run_name("single", args.reference_iterations),
                "tool": "impasto",
                "precision": default_name,
                "settings": {**single, "iterations": args.reference_iterations},
                "save": str(args.out / f"impasto-single-{size}.jpg"),
            },
            "single-fp32": {
                **common,
                "name": run_name("single-fp32", args.fp32_iterations),
                "tool": "impasto",
                "precision": "fp32",
                "settings": {**single, "iterations": args.fp32_iterations, "precision": "fp32"},
            },
            "pastiche": {
                **common,
                "name": run_name("pastiche", args.peer_iterations),
                "tool": "pastiche",
                "precision": "fp32",
                "iterations": args.peer_iterations,
            },
        }
        runs = []
        for key in args.only:
            t = time.perf_counter()
            r = run_child(specs[key])
            r.update(name=specs[key]["name"], key=key, precision=specs[key]["precision"])
            runs.append(r)
            print(
                f"{r['name']} at {size}: {time.perf_counter() - t:.0f} s, "
                f"score {r['score']['total']:.4g}",
                file=sys.stderr,
            )
        write_report(size, runs, info, args.out)
        print((args.out / f"bench-{size}.md").read_text())


if __name__ == "__main__":
    main()
