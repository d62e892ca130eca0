"""GPU check: correctness of each precision, then timed runs, on one CUDA device.

    python benchmarks/gpu.py [--out DIR] [--budget SECONDS]

1. Gradients at 256 px on the GPU in float32 (TF32 convolutions), bf16 and fp16,
   against float32 on the CPU: relative error of the loss and of the gradient.
2. The L-BFGS direction with 50 pairs at 512 px: the compact form (impasto.optim.lbfgs)
   against the textbook two-loop recursion, time per step.
3. Runs, each timed from the first iteration to the last with the device
   synchronised: the paper's setting (500 single-scale iterations from noise) in
   bf16 (also without CUDA graphs, and with the network in NCHW), fp16 and float32;
   the defaults at 512 px; the defaults and the paper's setting (also in NCHW) at
   2048 px; the paper's setting with ``torch.compile``. Outputs are scored in float32.

Prints one JSON line per measurement and a table last; writes gpu.json and gpu.md to
benchmarks/results/ (and to --out). Targets: 500 iterations at 512 px in
under 5 s on an H100, a 2048 px image in under a minute. Uses ../shared/images when
present, else the bundled example images. Stops starting new runs after --budget s.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

import impasto
from impasto.optim.lbfgs import LBFGS
from impasto.settings import PAPER_SETTINGS

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench import default_images  # noqa: E402

PAPER = {**PAPER_SETTINGS, "iterations": 500}


DEVICE = "cuda"  # --dry-run: "cpu", to try the script's plumbing at tiny sizes


def synced() -> float:
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def peak_gib() -> float:
    return round(impasto.devices.peak_memory_bytes(torch.device(DEVICE)) / 2**30, 2)


def gradient_check(content: Path, style: Path) -> list[dict]:
    """Loss and gradient at one image, on the GPU in each precision and on the CPU."""

    size = 256 if DEVICE == "cuda" else 32

    def loss_and_grad(device: str, precision: str) -> tuple[float, torch.Tensor]:
        st = impasto.Stylizer(
            content, style, impasto.Settings(size=size, seed=0, device=device, precision=precision)
        )
        w, h = st.inputs.size(size)
        gen = torch.Generator().manual_seed(1)
        start = st.targets.tensor(st.inputs.content, (w, h)).cpu() + 8 * torch.randn(
            1, 3, h, w, generator=gen
        )
        st.x = start.to(st.device).requires_grad_(True)
        with st.machine.autocast():
            total = st.loss_fn(st.x).total
        total.backward()
        return total.item(), st.x.grad.detach().cpu().double()

    ref_loss, ref_grad = loss_and_grad("cpu", "fp32")
    rows = []
    for precision in ("fp32", "bf16", "fp16") if DEVICE == "cuda" else ("fp32", "bf16"):
        loss, grad = loss_and_grad(DEVICE, precision)
        rows.append(
            {
                "check": "gradient",
                "precision": precision,
                "loss_rel_error": abs(loss - ref_loss) / abs(ref_loss),
                "grad_rel_error": float((grad - ref_grad).norm() / ref_grad.norm()),
                "grad_finite": bool(torch.isfinite(grad).all()),
            }
        )
    return rows


def two_loop(s_hist, y_hist, rho, order, g, gamma) -> torch.Tensor:
    """The textbook two-loop recursion, as impasto ran it before the compact form."""
    q = g.neg()
    alpha = {}
    for i in order:
        alpha[i] = rho[i] * s_hist[i].dot(q)
        q.addcmul_(y_hist[i], alpha[i], value=-1)
    d = q.mul_(gamma)
    for i in reversed(order):
        beta = rho[i] * y_hist[i].dot(d)
        d.addcmul_(s_hist[i], alpha[i] - beta)
    return d


def direction_timing(n: int = 3 * 512 * 384, m: int = 50) -> dict:
    """Time of one L-BFGS direction with m pairs on n pixels: two-loop against compact."""
    x = torch.zeros(n, device=DEVICE, requires_grad=True)
    opt = LBFGS([x], history_size=m)
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    # A quadratic with random curvatures fills the history with valid pairs.
    c = torch.rand(n, device=DEVICE, generator=gen) + 0.1
    t = torch.randn(n, device=DEVICE, generator=gen)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (c * (x - t) ** 2).sum()
        loss.backward()
        return loss

    for _ in range(m + 3):
        opt.step(closure)
    state = opt.state[x]
    g = torch.randn(n, device=DEVICE, generator=gen)
    w = state["w"]
    order = [(state["head"] - 1 - k) % m for k in range(state["count"])]
    rho = 1 / state["sy"].diagonal()  # as the two-loop version stored it
    new = opt.direction(g)
    old = two_loop(w[:m], w[m:], rho, order, g, state["h_diag"])
    rel = float((new - old).norm() / old.norm())

    def per_call(fn: Callable[[], object], repeats: int = 20) -> float:
        fn()
        t0 = synced()
        for _ in range(repeats):
            fn()
        return (synced() - t0) / repeats

    return {
        "check": "lbfgs_direction",
        "pixels": n,
        "pairs": m,
        "relative_difference": rel,
        "two_loop_ms": 1e3
        * per_call(lambda: two_loop(w[:m], w[m:], rho, order, g, state["h_diag"])),
        "compact_ms": 1e3 * per_call(lambda: opt.direction(g)),
    }


def timed_run(name: str, size: int, settings: dict, content: Path, style: Path, out: Path) -> dict:
    if name.endswith("-nchw"):  # the network in PyTorch's default layout, for comparison
        from impasto.model.vgg import VGG19Features

        original = VGG19Features.use_channels_last
        VGG19Features.use_channels_last = lambda self: None  # type: ignore[method-assign]
        try:
            return timed_run(name[: -len("-nchw")] + "-NCHW", size, settings, content, style, out)
        finally:
            VGG19Features.use_channels_last = original  # type: ignore[method-assign]
    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()
    else:
        size = max(32, size // 16)
        settings = {**settings, "iterations": 3, "device": "cpu"}
    t_setup = time.perf_counter()
    st = impasto.Stylizer(content, style, impasto.Settings(size=size, seed=0, **settings))
    t0 = synced()
    first = None
    for _ in st.run():
        if first is None:
            first = synced()  # the first iteration includes cuDNN's kernel search
    wall = synced() - t0
    run_peak = peak_gib()
    result = st.result()
    n = result.iterations
    steady = (wall - (first - t0)) / max(n - 1, 1)
    if name.startswith("default"):
        result.image.save(out / f"gpu-{name}.jpg", quality=92)
    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()
    score = impasto.score(result.image, content, style, impasto.Settings(device=DEVICE))
    return {
        "run": name,
        "size": list(result.image.size),
        "settings": settings,
        "precision": result.precision,
        "iterations": n,
        "stopped": result.stopped,
        "setup_s": round(st.setup_seconds, 2),
        "setup_and_first_s": round(first - t_setup, 2),
        "wall_s": round(wall, 2),
        "ms_per_iteration": round(1e3 * steady, 2),
        "peak_gib": run_peak,
        # float32 scoring at a size new to the process runs cuDNN's kernel search
        "score_peak_gib": peak_gib(),
        "best_loss": result.losses["total"],
        "score_fp32": score["total"],
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| run | size | precision | iterations | wall s | ms/it | setup + 1st it s "
        "| peak GiB | scoring's peak GiB | score |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "run" not in r:
            continue
        lines.append(
            f"| {r['run']} | {r['size'][0]}x{r['size'][1]} | {r['precision']} | "
            f"{r['iterations']} ({r['stopped']}) | {r['wall_s']} | {r['ms_per_iteration']} | "
            f"{r['setup_and_first_s']} | {r['peak_gib']} | {r.get('score_peak_gib', '')} | "
            f"{r['score_fp32']:.4g} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="also write results here")
    parser.add_argument("--budget", type=float, default=400, help="seconds; no run starts later")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument("--skip", default="", help="comma-separated steps not to run")
    args = parser.parse_args()
    global DEVICE
    if args.dry_run:
        DEVICE = "cpu"
    elif not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this check is for GPUs")
    began = time.perf_counter()
    content, style = default_images()
    out = args.out or HERE / "results"
    out.mkdir(parents=True, exist_ok=True)
    info = {
        "device": torch.cuda.get_device_name() if DEVICE == "cuda" else platform.processor(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "images": [content.name, style.name],
    }
    print(json.dumps(info), flush=True)
    rows: list[dict] = []
    cuda = {"device": DEVICE}
    steps: list[tuple[str, Callable[[], list[dict]]]] = [
        ("gradients", lambda: gradient_check(content, style)),
        ("direction", lambda: [direction_timing(*(() if DEVICE == "cuda" else (3000, 5)))]),
        (
            "warm-up",
            lambda: [
                timed_run("warm-up", 128, {**cuda, **PAPER, "iterations": 5}, content, style, out)
            ],
        ),
    ]
    runs = [
        ("paper-bf16", 512, {**cuda, **PAPER, "precision": "bf16"}),
        ("paper-bf16-nchw", 512, {**cuda, **PAPER, "precision": "bf16"}),
        ("paper-bf16-no-graphs", 512, {**cuda, **PAPER, "precision": "bf16", "cuda_graphs": False}),
        ("paper-fp16", 512, {**cuda, **PAPER, "precision": "fp16"}),
        ("paper-fp32", 512, {**cuda, **PAPER, "precision": "fp32"}),
        ("default", 512, cuda),
        ("default-2048", 2048, cuda),
        ("paper-2048", 2048, {**cuda, **PAPER}),
        ("paper-2048-nchw", 2048, {**cuda, **PAPER}),
        ("paper-bf16-compile", 512, {**cuda, **PAPER, "compile": True}),
    ]
    for name, size, settings in runs:
        steps.append(
            (name, lambda n=name, s=size, k=settings: [timed_run(n, s, k, content, style, out)])
        )
    skip = set(filter(None, args.skip.split(",")))
    for name, step in steps:
        if name in skip:
            continue
        if time.perf_counter() - began > args.budget:
            print(json.dumps({"skipped": name, "reason": "budget"}), flush=True)
            continue
        try:
            for row in step():
                rows.append(row)
                print(json.dumps(row), flush=True)
        except Exception:  # one failing step must not lose the others' numbers
            print(f"--- {name} failed:\n{traceback.format_exc()}", flush=True)
    rows = [r for r in rows if r.get("run") != "warm-up"]
    report = {"machine": info, "results": rows}
    md = f"GPU check on {info['device']}, torch {info['torch']} (CUDA {info['cuda']})\n\n"
    md += table(rows) + "\n"
    (out / "gpu.json").write_text(json.dumps(report, indent=1))
    (out / "gpu.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
