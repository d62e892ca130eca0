"""Which L-BFGS variant reaches the paper's loss in the fewest iterations?

    python benchmarks/optimizers.py [--size 512] [--device cuda] [--variants ...]

Time to quality is bound by iterations at full size (every per-step speed-up helps
the paper's setting as much as the defaults), so this counts iterations. First the
paper's setting runs (--reference-iterations single-scale L-BFGS steps from noise);
then every variant runs from the photo, and the script prints the iteration at which
its best loss first fell to the paper's final loss, and its loss after 100, 125, 150
and 200 iterations. Losses are those the optimiser sees (the run's precision), the
same for every variant.

Variants (all one evaluation per step, no line search):

- m<N>: impasto's L-BFGS with a history of N pairs (the default is 50);
- twoloop: the two-loop recursion with gamma * I, which is impasto's direction in
  another form (a check of this script);
- diag: the two-loop recursion with a diagonal initial matrix from the
  Gilbert & Lemarechal (1989) update instead of a multiple of the identity;
- color: initial matrix gamma * C per pixel, C the photo's RGB covariance
  (normalised to mean eigenvalue 1), so steps follow the image's own colours;
- lowpass<A>[x<K>]: initial matrix gamma * (I + A * blur), blur being K passes of a
  5x5 box filter (default A=3, K=2), which favours smooth changes;
- lr<F>: steps scaled by F.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import impasto
from impasto.optim.lbfgs import LBFGS

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import starts  # noqa: E402
from bench import default_images  # noqa: E402


class TwoLoop(LBFGS):
    """impasto's L-BFGS with the direction from the two-loop recursion and an initial
    matrix ``gamma * P`` for a symmetric positive-definite ``P`` (``precondition``)."""

    def precondition(self, q: torch.Tensor) -> torch.Tensor:
        return q

    def observe(self, s: torch.Tensor, y: torch.Tensor) -> None:
        """Called with each accepted pair, before the direction is formed."""

    @torch.no_grad()
    def direction(self, g: torch.Tensor) -> torch.Tensor:
        state = self.state[self.param_groups[0]["params"][0]]
        k, m = state["count"], self.param_groups[0]["history_size"]
        if k == 0:
            return g.neg()
        w, sy = state["w"], state["sy"]
        newest_first = [(state["head"] - 1 - j) % m for j in range(k)]
        q = g.neg()
        alpha = {}
        for i in newest_first:
            alpha[i] = float(w[i].dot(q)) / float(sy[i, i])
            q.add_(w[m + i], alpha=-alpha[i])
        # gamma for P: s.y / y.P y of the newest pair (the identity's s.y / y.y).
        newest = newest_first[0]
        y_new = w[m + newest]
        gamma = float(sy[newest, newest]) / float(y_new.dot(self.precondition(y_new)))
        d = self.precondition(q).mul_(gamma)
        for i in reversed(newest_first):
            beta = float(w[m + i].dot(d)) / float(sy[i, i])
            d.add_(w[i], alpha=alpha[i] - beta)
        return d

    def _store(self, state: dict, s: torch.Tensor, y: torch.Tensor, m: int) -> None:  # type: ignore[override]
        LBFGS._store(state, s, y, m)
        self.observe(s, y)


class Diagonal(TwoLoop):
    """Initial matrix diag(1 / b), b updated by the diagonal projection of BFGS."""

    b: torch.Tensor | None = None

    def observe(self, s: torch.Tensor, y: torch.Tensor) -> None:
        ys = float(y.dot(s))
        if self.b is None:
            self.b = torch.full_like(s, float(y.dot(y)) / ys)
        b = self.b
        bs = b * s
        new = b + y * y / ys - bs * bs / float(s.dot(bs))
        # Keep every entry within a factor 100 of the scalar curvature y.y / s.y.
        scalar = float(y.dot(y)) / ys
        self.b = new.clamp_(scalar / 100, scalar * 100)

    def precondition(self, q: torch.Tensor) -> torch.Tensor:
        return q / self.b if self.b is not None else q.clone()


class Colour(TwoLoop):
    def __init__(self, params, photo: torch.Tensor, **kw):
        super().__init__(params, **kw)
        pixels = photo.reshape(3, -1).double()
        cov = torch.cov(pixels)
        self.c = (cov / cov.trace() * 3).to(photo.dtype)
        self.shape = photo.shape

    def precondition(self, q: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ij,jn->in", self.c, q.reshape(3, -1)).reshape(-1)


class Lowpass(TwoLoop):
    def __init__(self, params, shape: torch.Size, strength: float, passes: int, **kw):
        super().__init__(params, **kw)
        self.shape, self.strength, self.passes = shape, strength, passes

    def precondition(self, q: torch.Tensor) -> torch.Tensor:
        img = q.reshape(self.shape)
        blurred = img
        for _ in range(self.passes):  # repeated box blurs approach a Gaussian
            blurred = F.avg_pool2d(blurred, 5, stride=1, padding=2, count_include_pad=False)
        return img.add(blurred, alpha=self.strength).reshape(-1)


def make(variant: str, st: impasto.Stylizer) -> torch.optim.Optimizer:
    x = st.x
    if variant.startswith("m"):
        return LBFGS([x], history_size=int(variant[1:]))
    if variant.startswith("lr"):
        return LBFGS([x], lr=float(variant[2:]))
    if variant == "twoloop":
        opt: TwoLoop = TwoLoop([x], history_size=50)
    elif variant == "diag":
        opt = Diagonal([x], history_size=50)
    elif variant == "color":
        opt = Colour([x], x.detach().clone(), history_size=50)
    elif variant.startswith("lowpass"):
        strength, _, passes = variant[7:].partition("x")
        opt = Lowpass(
            [x], x.shape, strength=float(strength or 3), passes=int(passes or 2), history_size=50
        )
    else:
        raise SystemExit(f"unknown variant {variant!r}")
    return opt


def curve(st: impasto.Stylizer, variant: str | None) -> tuple[list[float], float]:
    st.restart(st.targets.start(st.schedule.sizes[0], torch.Generator().manual_seed(0)))
    if variant is not None:
        st.optimizer = make(variant, st)
    t = time.perf_counter()
    losses = [p.best_total for p in st.run()]
    return losses, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--reference-iterations", type=int, default=500)
    parser.add_argument("--variants", nargs="*", default=["m50", "m10", "m100", "diag"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    content, style = default_images()

    def stylizer(iterations: int, initial: str) -> impasto.Stylizer:
        return starts.stylizer(
            content,
            style,
            args.size,
            iterations,
            args.device,
            initial=initial,
            precision=args.precision,
        )

    ref, ref_s = curve(stylizer(args.reference_iterations, "noise"), None)
    target = ref[-1]
    print(json.dumps({"reference": target, "seconds": round(ref_s, 1)}), flush=True)
    rows = []
    for variant in args.variants:
        losses, secs = curve(stylizer(args.iterations, "content"), variant)
        reach = next((i + 1 for i, v in enumerate(losses) if v <= target), None)
        at = {n: losses[n - 1] for n in (100, 125, 150, 200) if n <= len(losses)}
        rows.append(
            {
                "variant": variant,
                "iterations_to_reference": reach,
                "first": losses[0],
                "loss_at": at,
                "final": losses[-1],
                "seconds": round(secs, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        payload = {"args": vars(args) | {"out": None}, "reference": target, "rows": rows}
        args.out.write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
