"""Exact tiled evaluation: geometry, gradients against the untiled ones, the tile setting,
the print-sized L-BFGS history, and tiled runs end to end."""

from __future__ import annotations

import copy
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import random_vgg_weights

import impasto
from impasto.devices import Machine
from impasto.errors import ImpastoError
from impasto.io.metadata import read_provenance
from impasto.loss.gatys import GatysLoss
from impasto.model.vgg import VGG19Features
from impasto.optim.lbfgs import LBFGS
from impasto.run.evaluate import EagerEvaluator
from impasto.run.schedule import Schedule
from impasto.run.tiled import TiledEvaluator, TiledGatysLoss
from impasto.run.tiling import (
    Reach,
    TileGrid,
    default_halo,
    estimate_tiled_bytes,
    full_halo,
    grid_for,
    reach,
    resolve_tile,
)
from impasto.settings import PAPER_STYLE_LAYERS, Settings, SettingsError

CPU = Machine(torch.device("cpu"), None)


# --- geometry ----------------------------------------------------------------------------


def test_reach_of_layers_counted_by_hand() -> None:
    # relu1_1: one 3x3 conv, one pixel each side.
    assert reach("relu1_1") == Reach(1, 1, 1)
    # pool1 reaches one more pixel to the right (its 2x2 window) and doubles the stride.
    assert reach("pool1") == Reach(2, 3, 2)
    # relu5_1: convs 2x1 + 2x2 + 4x4 + 4x8 + 1x16 = 70 to the left; the four poolings
    # add 1 + 2 + 4 + 8 to the right; the receptive field is 70 + 85 + 1 = 156 pixels.
    assert reach("relu5_1") == Reach(70, 85, 16)
    assert reach("relu5_1").halo == 70  # the last core feature reaches 85 - 16 + 1 past it
    assert full_halo(PAPER_STYLE_LAYERS) == 80  # 70 rounded up to the stride, 16
    assert default_halo(PAPER_STYLE_LAYERS) == 48  # two thirds of 70, rounded up to 16
    assert full_halo(("relu4_2",)) == 40  # stride 8: 38 -> 40


def test_cores_partition_the_image_and_origins_align() -> None:
    grid = grid_for(100, 70, 40, PAPER_STYLE_LAYERS, halo=80)
    assert grid == TileGrid(100, 70, tile=32, halo=80)  # 40 rounded down to a multiple of 16
    covered = np.zeros((70, 100), int)
    for t in grid.tiles():
        covered[t.core.y0 : t.core.y1, t.core.x0 : t.core.x1] += 1
        assert t.padded.x0 % 16 == 0 and t.padded.y0 % 16 == 0
        assert t.padded.x0 == max(0, t.core.x0 - 80) and t.padded.x1 == min(100, t.core.x1 + 80)
    assert (covered == 1).all() and len(grid) == len(grid.tiles()) == 4 * 3
    last = grid.tiles()[-1]
    # Features of relu5_1 (stride 16) in the last core: rows 64 // 16 .. 70 // 16 of the image.
    assert last.core_in_image(16) == (slice(4, 4), slice(6, 6))
    assert last.core_at(16) == (slice(4 - 0, 4 - 0), slice(6 - 1, 6 - 1))


# --- the loss and its gradient, against the untiled ones ------------------------------------

WEIGHTS = random_vgg_weights()


def _losses(
    tile: int, last: str = "relu5_2", size: tuple[int, int] = (96, 64), **kw: object
) -> tuple[GatysLoss, TiledGatysLoss, torch.Tensor]:
    """The untiled and tiled loss of a random network, and an iterate with its noise."""
    gen = torch.Generator().manual_seed(0)
    net = VGG19Features(WEIGHTS, last_layer=last)
    net.use_channels_last()
    content = torch.rand(1, 3, size[1], size[0], generator=gen) * 255
    styles = [torch.rand(1, 3, 48, 64, generator=gen) * 255 for _ in kw.pop("styles", (1,))]
    weights = dict(content_weight=5.0, style_weight=500.0, tv_weight=100.0, **kw)
    weights.setdefault("content_layers", {"relu4_2": 0.5, "relu5_2": 0.5})
    weights.setdefault("style_layers", {layer: 0.2 for layer in PAPER_STYLE_LAYERS})
    weights.setdefault("style_blend", [1.0] * len(styles))
    x = (content + torch.randn(content.shape, generator=gen) * 40).requires_grad_(True)
    full = GatysLoss(net, content, styles, **weights)  # type: ignore[arg-type]
    # The full halo: exact up to rounding (the default is narrower, see docs/tiled.md).
    halo = full_halo([last])
    tiled = TiledGatysLoss(net, content, styles, tile=tile, halo=halo, **weights)  # type: ignore[arg-type]
    return full, tiled, x


def _compare(full: GatysLoss, tiled: TiledGatysLoss, x: torch.Tensor) -> None:
    expected = EagerEvaluator(full, CPU)(x).as_floats()
    g = x.grad.clone()  # type: ignore[union-attr]
    got = TiledEvaluator(tiled, CPU)(x).as_floats()
    for term in ("content", "style", "tv", "total"):
        assert got[term] == pytest.approx(expected[term], rel=1e-5)
    error = (x.grad - g).norm() / g.norm()  # type: ignore[operator]
    assert error < 1e-4


def test_tiled_gradient_equals_the_untiled_one() -> None:
    full, tiled, x = _losses(tile=48)
    assert len(tiled.tiles) == 2 * 2 and tiled.grid.halo == 96  # relu5_2 needs 86 -> 96
    for layer, gram in tiled.style_targets[0].items():  # style Grams measured tile by tile
        assert torch.allclose(gram, full.style_targets[0][layer], rtol=1e-5, atol=1e-7)
    _compare(full, tiled, x)


def test_tiled_gradient_with_masks_and_per_style_layers() -> None:
    # A shallower network, so that the halo (32 px at relu4_1) is narrower than the image.
    gen = torch.Generator().manual_seed(1)
    full, tiled, x = _losses(
        tile=48,
        last="relu4_1",
        size=(128, 96),
        styles=(1, 2),
        content_layers={"relu3_2": 1.0},
        style_layers={"relu1_1": 0.5, "relu4_1": 0.5},
        style_blend=[0.25, 0.75],
        content_masks=[torch.rand(1, 1, 96, 128, generator=gen), None],
        style_masks=[None, torch.rand(1, 1, 48, 64, generator=gen)],
        style_layers_per_style=[{"relu1_1": 0.5, "relu3_1": 0.5}, {"relu2_1": 0.3, "relu4_1": 0.7}],
    )
    assert tiled.grid.halo == 32 and len(tiled.tiles) == 3 * 2
    assert tiled.gram_keys == [(0, "relu1_1"), (0, "relu3_1"), (None, "relu2_1"), (None, "relu4_1")]
    _compare(full, tiled, x)
    # Without a halo the tiles' borders show: the loss is no longer the image's.
    tiled.grid = replace(tiled.grid, halo=0)
    tiled.tiles = tiled.grid.tiles()
    expected = EagerEvaluator(full, CPU).score(x).total.item()
    assert TiledEvaluator(tiled, CPU).score(x).total.item() != pytest.approx(expected, rel=1e-3)


# --- the setting -------------------------------------------------------------------------------


def test_tile_setting_takes_auto_zero_and_multiples_of_16() -> None:
    assert Settings().tile is None
    assert Settings(tile="auto").tile is None  # type: ignore[arg-type]
    assert Settings(tile="256").tile == 256  # type: ignore[arg-type]
    assert Settings(tile=0).tile == 0
    for bad in (100, 16, -16, 40000):
        with pytest.raises(SettingsError, match=r"tile: must be 0 \(never tile\), auto, or a "):
            Settings(tile=bad)


def test_cli_tile_option(capsys: pytest.CaptureFixture[str]) -> None:
    from impasto.cli import build_parser, main, settings_from_args

    def parsed(*flags: str) -> int | None:
        args = build_parser().parse_args(["stylize", "c.png", "s.png", "-o", "o.png", *flags])
        return settings_from_args(args).tile

    assert parsed("--tile", "auto") is None and parsed("--tile", "512") == 512
    assert parsed() is None and parsed("--tile", "0") == 0
    assert main(["stylize", "c.png", "s.png", "-o", "o.png", "--tile", "100"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "impasto: error: --tile: must be 0 (never tile), auto, or a multiple of 16 from 32 "
        "to 32768 pixels, got 100"
    ]


def test_resolve_tile_fits_the_memory_it_is_given() -> None:
    settings = Settings(size=4096)
    size = (4096, 3072)
    # Untiled this would need about 70 GB in float32; in 3 GiB auto finds a tile.
    tile = resolve_tile(settings, size, CPU, free=3 * 2**30)
    assert 0 < tile < 4096
    grid = grid_for(*size, tile, (*PAPER_STYLE_LAYERS, "relu4_2"), None)
    assert estimate_tiled_bytes(*size, grid, None) <= 3 * 2**30
    assert resolve_tile(settings, (256, 192), CPU, free=3 * 2**30) == 0  # fits untiled
    assert resolve_tile(settings.replace(tile=256), size, CPU, free=3 * 2**30) == 256
    with pytest.raises(ImpastoError, match=r"even in tiles of 1024 px"):
        resolve_tile(settings.replace(tile=1024), size, CPU, free=3 * 2**30)
    with pytest.raises(ImpastoError, match=r"4096x3072 image needs about .* GB even in tiles"):
        resolve_tile(settings, size, CPU, free=2**30)


def test_eta_counts_a_tiled_scale_at_its_cost() -> None:
    plain = Schedule(sizes=((10, 10), (20, 20)), planned=(4, 2))
    # 4 coarse iterations of 100 pixels took 4 s; 2 fine ones of 400 pixels are left.
    assert plain.eta(4.0, [4], 1, 0) == pytest.approx(8.0)
    # Tiled, the fine scale's pixels cost twice as much.
    assert replace(plain, costs=(1.0, 2.0)).eta(4.0, [4], 1, 0) == pytest.approx(16.0)


# --- the print-sized L-BFGS history ---------------------------------------------------------


def _quadratic_steps(opt: LBFGS, x: torch.Tensor, steps: int) -> list[float]:
    c = torch.logspace(0, 2, x.numel())
    losses = []

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (c * (x.reshape(-1) - torch.arange(x.numel())) ** 2).sum()
        loss.backward()
        return loss

    for _ in range(steps):
        losses.append(float(opt.step(closure).detach()))
    return losses


def test_bf16_history_minimises_and_resumes_in_bf16() -> None:
    def fresh(history_dtype: torch.dtype | None = torch.bfloat16) -> tuple[LBFGS, torch.Tensor]:
        x = torch.zeros(4, 25, requires_grad=True)
        return LBFGS([x], history_size=5, history_dtype=history_dtype), x

    opt, x = fresh()
    losses = _quadratic_steps(opt, x, 30)
    assert losses[-1] < 1e-5 * losses[0]
    assert opt.state[x]["w"].dtype == torch.bfloat16 and opt.state[x]["w"].shape == (10, 100)
    opt32, x32 = fresh(None)  # about as good as a float32 history
    assert losses[-1] < 10 * _quadratic_steps(opt32, x32, 30)[-1]

    first, x1 = fresh()
    _quadratic_steps(first, x1, 7)
    second = LBFGS([x1], history_size=5, history_dtype=torch.bfloat16)
    second.load_state_dict(first.state_dict())
    assert second.state[x1]["w"].dtype == torch.bfloat16
    _quadratic_steps(second, x1, 23)
    assert torch.equal(x1, x)  # the same iterates as the uninterrupted run


# --- runs ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_tiled_run_matches_untiled_and_resumes(examples: tuple[Path, Path]) -> None:
    content, style = examples
    kw = dict(size=64, iterations=2, seed=3, precision="fp32", tolerance=0)
    untiled = impasto.stylize(content, [style], tile=0, **kw)
    ticks: list[tuple[int, int]] = []
    st = impasto.Stylizer(content, [style], Settings(tile=32, **kw))
    st.targets.tiles.callback = lambda done, total: ticks.append((done, total))
    assert st.settings.tile == 32 and type(st.evaluator).__name__ == "TiledEvaluator"
    run = st.run()
    next(run)
    assert ticks == [(i, 8) for i in range(1, 9)]  # 2 x 2 tiles, two passes
    # A copy, as a state file is: the run goes on changing its tensors in place.
    saved = copy.deepcopy(st.state_dict())
    resumed = impasto.Stylizer(content, [style], st.settings, state=saved)
    for _ in run:
        pass
    for _ in resumed.run():
        pass
    tiled, again = st.result(), resumed.result()
    assert np.array_equal(np.asarray(tiled.image), np.asarray(again.image))
    a, b = (np.asarray(r.image, dtype=float) for r in (tiled, untiled))
    assert np.abs(a - b).mean() < 0.5
    assert tiled.losses["total"] == pytest.approx(untiled.losses["total"], rel=1e-3)


@pytest.mark.slow
def test_multiscale_tiles_only_the_large_scales_and_weights_their_time(
    examples: tuple[Path, Path],
) -> None:
    content, style = examples
    settings = Settings(
        size=64, scales=2, min_size=32, tile=48, iterations=1, coarse_iterations=1, seed=0
    )
    st = impasto.Stylizer(content, [style], settings)
    assert st.schedule.costs[0] == 1.0 and st.schedule.costs[1] > 1.0
    meter, ticks = st.targets.tiles, []
    meter.callback = lambda done, total: ticks.append((meter.stage, done, total))
    kinds = []
    for p in st.run():
        kinds.append((p.scale, type(st.evaluator).__name__))
    assert kinds[0] == (0, "EagerEvaluator") and kinds[-1] == (1, "TiledEvaluator")
    # The tiled scale's targets (the photo's, then the painting's) are metered too.
    targets = [t for t in ticks if t[0] == "targets"]
    assert targets and ticks[: len(targets)] == targets
    passes = [total for _, done, total in targets if done == total]
    assert len(passes) == 2 and passes[0] == len(st.loss_fn.tiles)


@pytest.mark.slow
def test_cli_print_records_the_tile_and_score_agrees(
    examples: tuple[Path, Path], tmp_path: Path
) -> None:
    content, style = examples
    out = tmp_path / "print.png"
    command = [sys.executable, "-m", "impasto", "stylize", str(content), str(style)]
    flags = ["--size", "64", "--tile", "32", "--iterations", "1", "--color-control", "luminance"]
    proc = subprocess.run(
        [*command, "-o", str(out), *flags],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    # One scale, tiled: its targets are measured before the bar starts, and said so.
    assert "impasto: measuring the targets, tile 4/4\n" in proc.stderr
    assert "tile 4/4" in proc.stderr.split("\n", 2)[-1]  # the final scoring pass
    assert read_provenance(out)["settings"]["tile"] == 32
    plain = impasto.score(out, content, [style], Settings(tile=0))
    tiled = impasto.score(out, content, [style], Settings(tile=32))
    assert tiled == pytest.approx(plain, rel=1e-5)
