"""Results that read as paintings: the stop test, strength, the paper's preset, the
balance of the style layers, colour (luminance-only and black-and-white styles) and
the image's last rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import random_vgg_weights
from PIL import Image

import impasto
from impasto.cli import build_parser, settings_from_args
from impasto.loss.color import LUMA, is_grey, rgb_to_yiq
from impasto.loss.gatys import GatysLoss
from impasto.model.vgg import VGG19Features
from impasto.run.stopping import ToleranceStop
from impasto.settings import PAPER_SETTINGS, TOLERANCE_WINDOW, Settings


def photo(w: int = 64, h: int = 40) -> Image.Image:
    """A small coloured scene: gradients and a few shapes."""
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([60 + 2 * x, 80 + 3 * y, 160 - x - y], axis=-1).astype(float)
    rgb[(x - 40) ** 2 + (y - 15) ** 2 < 60] = (230, 200, 60)
    rgb[y > 0.7 * h] *= 0.6
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def strokes(seed: int, colour: bool = True, size: int = 64) -> Image.Image:
    """A painting-like texture of oriented streaks."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    phase = rng.uniform(0, 6, 3)
    waves = [np.sin(0.3 * x + 0.2 * y + p + np.sin(0.15 * y)) for p in phase]
    rgb = np.stack([128 + 90 * w for w in waves], axis=-1)
    if not colour:
        rgb = np.repeat(rgb.mean(axis=-1, keepdims=True), 3, axis=-1)
    rgb += rng.normal(0, 2, rgb.shape)  # JPEG-like noise, colour noise too
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


# --- the stop test ----------------------------------------------------------------------


def terms(content: float, style: float, tv: float = 1.0) -> dict[str, float]:
    return {"content": content, "style": style, "tv": tv, "total": content + style + tv}


def feed(stop: ToleranceStop, records: list[dict[str, float]]) -> list[bool]:
    return [stop.update(r["total"], r) for r in records]


def test_a_blend_is_not_converged_while_its_content_term_still_moves() -> None:
    # Two styles no image matches at once: a style term of 1e6 that cannot fall, and a
    # content term still falling 1% per 10 iterations. The total moves by 0.01% of itself
    # per 10 iterations, which the old test (relative to the total) called converged.
    records = [terms(1e4 * 0.999**i, 1e6) for i in range(40)]
    total_move = (records[-11]["total"] - records[-1]["total"]) / records[-1]["total"]
    assert total_move < 1e-3
    assert not any(feed(ToleranceStop(1e-3), records))
    # Given only totals, the test watches the total, as before.
    assert ToleranceStop(1e-3, [r["total"] for r in records[-11:-1]]).update(records[-1]["total"])


def test_converged_once_no_term_moves_by_the_tolerance() -> None:
    moving = [terms(1e4 * 0.99**i, 5e4 * 0.98**i) for i in range(20)]
    still = [terms(moving[-1]["content"], moving[-1]["style"] * (1 - 1e-5 * i)) for i in range(20)]
    stop = ToleranceStop(1e-3)
    fired = feed(stop, moving + still)
    assert not any(fired[:20])
    # Converged as soon as the window holds only still iterations: 10 after they began.
    assert fired.index(True) == 20 + TOLERANCE_WINDOW - 1
    assert stop.change() < 1e-3


def test_tolerance_zero_never_stops_and_old_state_is_read() -> None:
    flat = [terms(1.0, 1.0)] * 30
    assert not any(feed(ToleranceStop(0.0), flat))
    # State saved by an earlier version holds bare totals.
    stop = ToleranceStop(1e-3, [3.0] * TOLERANCE_WINDOW)
    assert stop.update(3.0)


# --- settings: strength and the paper's preset -----------------------------------------


def test_the_paper_preset_and_its_flag() -> None:
    paper = Settings.paper()
    for name, value in PAPER_SETTINGS.items():
        assert getattr(paper, name) == value, name
    assert paper.scale_iterations(1) == [500]
    # Options given with --paper apply on top of it.
    args = build_parser().parse_args(
        ["stylize", "c.jpg", "s.jpg", "-o", "o.png", "--paper", "--style-weight", "100"]
    )
    assert settings_from_args(args) == Settings.paper(style_weight=100.0)
    args = build_parser().parse_args(["stylize", "c.jpg", "s.jpg", "-o", "o.png"])
    assert settings_from_args(args) == Settings()


def test_the_defaults_depart_from_the_paper_only_where_the_readme_says() -> None:
    defaults, paper = Settings(), Settings.paper()
    departures = {
        name for name in PAPER_SETTINGS if getattr(defaults, name) != getattr(paper, name)
    }
    assert departures == {"initial", "tolerance", "scales", "style_layer_balance", "style_weight"}
    assert (defaults.scales, defaults.style_layer_balance) == (0, "relative")
    assert defaults.min_size == 256  # where the coarse scales begin, in the same item
    assert defaults.style_weight * defaults.strength == 0.5 * paper.style_weight
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    deviations = " ".join(readme[readme.index("## Faithfulness and deviations") :].split())
    for flag in ("--initial noise", "--tolerance", "--scales 1", "--style-layer-balance reference"):
        assert flag in deviations, flag
    assert "style weight 250" in deviations and "From 256 px up" in deviations


def test_strength_multiplies_the_style_term_alone() -> None:
    content, style, image = photo(), strokes(1), strokes(2).resize((64, 40))
    base = impasto.score(image, content, [style], Settings(size=64))
    strong = impasto.score(image, content, [style], Settings(size=64, strength=2.5))
    assert strong["style"] == pytest.approx(2.5 * base["style"], rel=1e-5)
    assert strong["content"] == pytest.approx(base["content"], rel=1e-6)
    assert strong["tv"] == pytest.approx(base["tv"], rel=1e-6)
    with pytest.raises(impasto.SettingsError, match="strength"):
        Settings(strength=-1)


# --- the balance of the style layers ----------------------------------------------------


def test_relative_balance_divides_each_layer_by_its_targets_mean_square() -> None:
    net = VGG19Features(random_vgg_weights(), last_layer="relu2_1")
    gen = torch.Generator().manual_seed(0)
    content, style, x = (torch.rand(1, 3, 24, 32, generator=gen) * 255 for _ in range(3))
    layers = {"relu1_1": 0.25, "relu2_1": 0.75}
    common = dict(
        content_weight=0.0,
        content_layers={},
        style_weight=3.0,
        style_layers=layers,
        style_blend=[1.0],
        tv_weight=0.0,
    )
    plain = GatysLoss(net, content, [style], **common)
    balanced = GatysLoss(net, content, [style], **common, style_balance="relative")
    targets = plain.style_targets[0]
    square = {k: float((targets[k] ** 2).mean()) for k in layers}
    mean = sum(square.values()) / 2
    feats = net(x, layers)
    from impasto.loss.gatys import gram_matrix

    by_hand = sum(
        3.0 * w * mean / square[k] * float(((gram_matrix(feats[k]) - targets[k]) ** 2).mean())
        for k, w in layers.items()
    )
    assert float(balanced(x).style) == pytest.approx(by_hand, rel=1e-4)
    # One layer alone is its own mean: the balance changes nothing.
    one = {**common, "style_layers": {"relu2_1": 1.0}}
    a = GatysLoss(net, content, [style], **one)(x).style
    b = GatysLoss(net, content, [style], **one, style_balance="relative")(x).style
    assert float(a) == pytest.approx(float(b), rel=1e-5)


# --- the last rows and columns ----------------------------------------------------------


def test_every_row_reaches_the_deepest_style_layer() -> None:
    # 40 rows: with pooling that drops odd rows, relu5_1 would see only the first 32.
    net = VGG19Features(random_vgg_weights(), last_layer="relu5_1")
    x = (
        torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(1)) * 255
    ).requires_grad_()
    features = net(x, ["relu5_1"])["relu5_1"]
    assert features.shape[-2:] == (3, 4)  # ceil(40/16) x ceil(56/16)
    features.pow(2).sum().backward()
    rows = x.grad.abs().sum(dim=(0, 1, 3))
    assert rows[-8:].min() > 0.05 * rows.mean()


# --- colour -----------------------------------------------------------------------------


def test_black_and_white_pictures_are_told_from_coloured_ones() -> None:
    assert is_grey(strokes(3, colour=False))
    assert is_grey(strokes(3, colour=False).convert("L"))
    assert not is_grey(strokes(3))
    assert not is_grey(photo())


def test_a_black_and_white_style_paints_in_grey() -> None:
    settings = Settings(size=32, scales=1, iterations=4, seed=0, threads=1)
    result = impasto.stylize(photo(), [strokes(4, colour=False)], settings=settings)
    out = np.asarray(result.image, dtype=np.int16)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    # A coloured style keeps a coloured result.
    coloured = impasto.stylize(photo(), [strokes(4)], settings=settings)
    chroma = rgb_to_yiq(np.asarray(coloured.image, dtype=np.float64))[..., 1:]
    assert np.abs(chroma).mean() > 5


def test_luminance_only_transfer_moves_the_luminance_alone() -> None:
    settings = Settings(size=32, scales=1, iterations=0, seed=0, color_control="luminance")
    st = impasto.Stylizer(photo(), [strokes(5)], settings)
    st.evaluator(st.x)
    grad = st.x.grad[0].reshape(3, -1)
    # The network sees (Y, Y, Y): the gradient of every pixel points along Y's weights,
    # so no step can paint into the chroma that the result drops.
    luma = torch.tensor(LUMA, dtype=grad.dtype)
    direction = grad / grad.norm(dim=0, keepdim=True).clamp_min(1e-12)
    assert torch.allclose(
        direction.abs().T, (luma / luma.norm()).expand(grad.shape[1], 3), atol=1e-4
    )
