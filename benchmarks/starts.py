"""Which start reaches a loss soonest? Strategies for the first iterations, compared.

    python benchmarks/starts.py [--size 512] [--device cuda] [--target 2.058e6]

Every strategy ends with single-scale L-BFGS at --size from some start:

- photo: the content image (impasto's default);
- matched: the content image with the style's colour mean and covariance;
- coarse-N: N iterations at half the size from the photo, the result upsampled
  (bicubic), as multi-scale mode does;
- residual-N: the same, but only the change the coarse run made is upsampled and
  added to the full-size photo, which keeps the photo's fine detail;
- noise: the paper's start.

Cost is counted in full-size iterations: one at half size counts as --coarse-cost
(0.27: its measured time relative to a full-size one at 256 against 512 px on the
2-core CPU). Prints, per strategy, the cost at which the best loss first fell to
--target, and the loss after 150, 200 and 300 units.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import impasto
from impasto.loss.color import histogram_transform

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench import default_images  # noqa: E402


def stylizer(content: Path, style: Path, size: int, iterations: int, device: str, **kw):
    # The paper's loss and one scale, whatever the defaults are.
    settings = impasto.Settings.paper(
        size=size, iterations=iterations, seed=0, device=device, **{"initial": "content", **kw}
    )
    return impasto.Stylizer(content, style, settings)


def photo(st: impasto.Stylizer, size: int) -> torch.Tensor:
    return st.targets.tensor(st.inputs.content, st.inputs.size(size))


def run_from(st: impasto.Stylizer, start: torch.Tensor) -> list[float]:
    """Best loss after each iteration of ``st`` started at ``start``."""
    st.restart(start)
    return [p.best_total for p in st.run()]


def strategies(content: Path, style: Path, args: argparse.Namespace) -> list[tuple]:
    """(name, cost spent before the full-size run, best loss after each full-size step)."""
    size, its, dev = args.size, args.iterations, args.device
    st = stylizer(content, style, size, its, dev)
    full = photo(st, size)
    w, h = st.inputs.size(size)

    def up(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t, size=(h, w), mode="bicubic", align_corners=False)

    out = [("photo", 0.0, run_from(st, full))]
    recolor = histogram_transform(st.inputs.styles[0], st.inputs.content)
    matched = recolor.apply_tensor(full)
    out.append(("matched", 0.0, run_from(stylizer(content, style, size, its, dev), matched)))
    for n in args.coarse:
        small_st = stylizer(content, style, size // 2, n, dev)
        small = photo(small_st, size // 2)
        run_from(small_st, small)
        result = small_st.best.x
        for name, start in (
            (f"coarse-{n}", up(result)),
            (f"residual-{n}", full + up(result - small)),
        ):
            curve = run_from(stylizer(content, style, size, its, dev), start)
            out.append((name, n * args.coarse_cost, curve))
    noise = stylizer(content, style, size, its, dev, initial="noise")
    gen = torch.Generator().manual_seed(0)
    out.append(("noise", 0.0, run_from(noise, noise.targets.start(noise.schedule.sizes[0], gen))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--coarse", type=int, nargs="*", default=[50, 100, 200])
    parser.add_argument("--coarse-cost", type=float, default=0.27)
    parser.add_argument("--target", type=float, default=2.058e6)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    content, style = default_images()
    rows = []
    for name, offset, curve in strategies(content, style, args):
        reach = next((i + 1 for i, v in enumerate(curve) if v <= args.target), None)
        at = {
            u: curve[int(u - offset) - 1] if 0 < u - offset <= len(curve) else None
            for u in (150, 200, 300)
        }
        rows.append(
            {
                "start": name,
                "units_to_target": None if reach is None else round(offset + reach, 2),
                "loss_at_units": at,
                "final": curve[-1],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"args": vars(args) | {"out": None}, "rows": rows}))


if __name__ == "__main__":
    main()
