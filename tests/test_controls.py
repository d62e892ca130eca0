"""The perceptual controls of Gatys et al. (CVPR 2017): colour, space and scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import random_vgg_weights
from PIL import Image, ImageOps

import impasto
from impasto.cli import build_parser, settings_from_args
from impasto.errors import SettingsError
from impasto.loss.color import (
    ColorTransform,
    color_statistics,
    combine_luminance,
    grey_transform,
    histogram_transform,
    luminance,
    luminance_transform,
    match_color_histogram,
    preserve_colors,
    rgb_to_yiq,
)
from impasto.loss.gatys import GatysLoss, gram_matrix
from impasto.loss.guidance import layer_masks, mask_tensor, masked_gram
from impasto.model.vgg import VGG19Features
from impasto.settings import Settings

# --- helpers ---------------------------------------------------------------------------


def random_net(last_layer: str = "relu2_1", dtype: torch.dtype = torch.float32) -> VGG19Features:
    """VGG19 with random (He-initialised) weights: cheap, and enough to test the losses."""
    return VGG19Features(random_vgg_weights(dtype), last_layer=last_layer)


def random_image(h: int, w: int, seed: int) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 255


def correlated_colours(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Float RGB pixels with correlated channels and a non-trivial mean, like a photo."""
    rng = np.random.default_rng(seed)
    mix = rng.uniform(0.2, 1.0, (3, 3)) + np.eye(3)
    return rng.random((*shape, 3)) ** 1.5 @ mix.T * 60 + rng.uniform(0, 60, 3)


# --- colour: histogram matching --------------------------------------------------------


@pytest.mark.parametrize("method", ["cholesky", "eigen"])
def test_histogram_matching_gives_the_content_mean_and_covariance(method: str) -> None:
    content = correlated_colours((23, 31), seed=1)
    style = correlated_colours((40, 19), seed=2)
    matched = match_color_histogram(style, content, method)
    mu_c, cov_c = color_statistics(content)
    mu_m, cov_m = color_statistics(matched)
    np.testing.assert_allclose(mu_m, mu_c, rtol=0, atol=1e-9)
    np.testing.assert_allclose(cov_m, cov_c, rtol=1e-10, atol=1e-9)
    assert matched.shape == style.shape


def test_the_two_histogram_methods_differ_and_cholesky_is_triangular() -> None:
    content = correlated_colours((20, 20), seed=3)
    style = correlated_colours((20, 20), seed=4)
    chol = histogram_transform(content, style, "cholesky").matrix
    eig = histogram_transform(content, style, "eigen").matrix
    # L_C L_S^-1 is lower triangular; Sigma_C^1/2 Sigma_S^-1/2 in general is not.
    assert np.allclose(np.triu(chol, 1), 0)
    assert not np.allclose(chol, eig)
    with pytest.raises(ValueError, match="unknown histogram method"):
        histogram_transform(content, style, "pca")


def test_histogram_matching_of_grey_and_flat_style_images_stays_finite() -> None:
    content = correlated_colours((16, 16), seed=5)
    grey = np.repeat(correlated_colours((16, 16), seed=6)[..., :1], 3, axis=-1)
    flat = np.full((16, 16, 3), 77.0)
    for style in (grey, flat):
        out = match_color_histogram(style, content)
        assert np.isfinite(out).all()
    # A flat image has nothing to stretch: it becomes the content's mean colour.
    mu_c, _ = color_statistics(content)
    np.testing.assert_allclose(
        match_color_histogram(flat, content), np.broadcast_to(mu_c, flat.shape)
    )


def test_transform_of_a_tensor_equals_transform_of_the_array() -> None:
    t = histogram_transform(correlated_colours((8, 8), 7), correlated_colours((8, 8), 8))
    image = random_image(5, 6, seed=0).double()
    array = image[0].permute(1, 2, 0).numpy()
    expected = t.apply(array)
    got = t.apply_tensor(image)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert torch.equal(ColorTransform.identity().apply_tensor(image), image)


# --- colour: luminance-only transfer ---------------------------------------------------


def test_luminance_transform_makes_grey_with_the_content_luminance_statistics() -> None:
    content = correlated_colours((30, 20), seed=9)
    style = correlated_colours((12, 40), seed=10) * 0.5 + 100
    grey = luminance_transform(content, style).apply(style)
    # Three equal channels: the network sees a grey image.
    np.testing.assert_allclose(grey[..., 0], grey[..., 1])
    np.testing.assert_allclose(grey[..., 0], grey[..., 2])
    y_c = luminance(content)
    assert grey[..., 0].mean() == pytest.approx(y_c.mean(), abs=1e-9)
    assert grey[..., 0].std() == pytest.approx(y_c.std(), rel=1e-9)
    # The content itself is only turned grey, its luminance unchanged.
    np.testing.assert_allclose(grey_transform().apply(content)[..., 1], y_c)


def test_combine_luminance_keeps_chroma_of_one_and_luminance_of_the_other() -> None:
    a = correlated_colours((6, 7), seed=11)
    b = correlated_colours((6, 7), seed=12)
    mixed = rgb_to_yiq(combine_luminance(a, b))
    np.testing.assert_allclose(mixed[..., 0], luminance(a), atol=1e-9)
    np.testing.assert_allclose(mixed[..., 1:], rgb_to_yiq(b)[..., 1:], atol=1e-9)


def test_preserve_colors_is_unchanged() -> None:
    rng = np.random.default_rng(13)
    content = Image.fromarray(rng.integers(0, 256, (9, 11, 3), dtype=np.uint8))
    stylized = Image.fromarray(rng.integers(0, 256, (9, 11, 3), dtype=np.uint8))
    c = rgb_to_yiq(np.asarray(content, dtype=np.float64))
    s = rgb_to_yiq(np.asarray(stylized, dtype=np.float64))
    expected = (
        np.concatenate([s[..., :1], c[..., 1:]], axis=-1)
        @ np.linalg.inv(
            np.array(
                [
                    [0.299, 0.587, 0.114],
                    [0.595716, -0.274453, -0.321263],
                    [0.211456, -0.522591, 0.311135],
                ]
            )
        ).T
    )
    expected = np.clip(expected, 0, 255).round().astype(np.uint8)
    assert np.array_equal(np.asarray(preserve_colors(content, stylized)), expected)


# --- spatial control -------------------------------------------------------------------


@pytest.mark.parametrize("size", [(37, 45), (32, 32), (17, 50)])
def test_layer_masks_have_the_size_of_each_layers_features(size: tuple[int, int]) -> None:
    net = random_net("relu5_1")
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]
    feats = net(random_image(*size, seed=0), layers)
    masks = layer_masks(torch.ones(1, 1, *size), layers)
    for layer in layers:
        assert masks[layer].shape[-2:] == feats[layer].shape[-2:], layer
        assert torch.all(masks[layer] == 1)  # white stays exactly white at every layer


def test_mask_tensor_keeps_white_exactly_white_and_refuses_black() -> None:
    white = Image.new("L", (64, 48), 255)
    t = mask_tensor(white, (20, 15))
    assert t.shape == (1, 1, 15, 20) and torch.all(t == 1.0)
    half = Image.new("L", (64, 48), 0)
    half.paste(255, (0, 0, 32, 48))
    t = mask_tensor(half, (32, 24))
    assert torch.all(t[..., :15] == 1.0) and torch.all(t[..., 17:] == 0.0)
    with pytest.raises(SettingsError, match="black everywhere"):
        mask_tensor(Image.new("L", (8, 8), 0), (4, 4), what="--content-masks 1")


def test_masked_gram_with_white_mask_is_the_gram_matrix() -> None:
    f = torch.randn(1, 8, 6, 7, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(masked_gram(f, torch.ones(1, 1, 6, 7)), gram_matrix(f), rtol=1e-6)


def test_masked_gram_is_the_gram_matrix_of_the_region() -> None:
    # A binary mask of the left 3 columns: the statistics of those columns alone,
    # normalised by their own size, whatever the rest of the image holds.
    f = torch.randn(1, 5, 4, 8, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(1, 1, 4, 8)
    mask[..., :3] = 1
    assert torch.allclose(masked_gram(f, mask), gram_matrix(f[..., :3]), rtol=1e-5, atol=1e-7)
    # Soft masks weight each position by T^2 and normalise by sum T^2.
    soft = torch.rand(1, 1, 4, 8, generator=torch.Generator().manual_seed(2))
    flat = f.reshape(5, 32)
    w = soft.reshape(32) ** 2
    expected = (flat * w) @ flat.T / (5 * w.sum())
    assert torch.allclose(masked_gram(f, soft)[0], expected, rtol=1e-5, atol=1e-7)


def _loss(net: VGG19Features, content: torch.Tensor, styles: list[torch.Tensor], **kw) -> GatysLoss:
    args = dict(
        content_weight=5.0,
        content_layers={"relu2_1": 1.0},
        style_weight=500.0,
        style_layers={"relu1_1": 0.5, "relu2_1": 0.5},
        style_blend=[1.0 / len(styles)] * len(styles),
        tv_weight=100.0,
    )
    args.update(kw)
    return GatysLoss(net, content, styles, **args)


def test_all_white_masks_reproduce_the_unguided_loss_and_gradient() -> None:
    net = random_net()
    content, s1, s2 = random_image(20, 24, 1), random_image(18, 30, 2), random_image(26, 22, 3)
    plain = _loss(net, content, [s1, s2])
    guided = _loss(
        net,
        content,
        [s1, s2],
        content_masks=[torch.ones(1, 1, 20, 24)] * 2,
        style_masks=[torch.ones(1, 1, 18, 30), torch.ones(1, 1, 26, 22)],
        style_layers_per_style=[plain.style_layers] * 2,
    )
    assert guided.guided and not plain.guided
    x1 = random_image(20, 24, 4).requires_grad_(True)
    x2 = x1.detach().clone().requires_grad_(True)
    a, b = plain(x1), guided(x2)
    assert b.style.item() == pytest.approx(a.style.item(), rel=1e-6)
    assert b.total.item() == pytest.approx(a.total.item(), rel=1e-6)
    a.total.backward()
    b.total.backward()
    assert torch.allclose(x2.grad, x1.grad, rtol=1e-5, atol=1e-6 * x1.grad.abs().max().item())


def test_guided_loss_passes_gradcheck() -> None:
    net = random_net(dtype=torch.float64).double()
    gen = torch.Generator().manual_seed(5)
    content = torch.rand(1, 3, 4, 4, generator=gen, dtype=torch.float64) * 255
    style = torch.rand(1, 3, 4, 4, generator=gen, dtype=torch.float64) * 255
    soft = torch.rand(1, 1, 4, 4, generator=gen, dtype=torch.float64)
    loss = _loss(net, content, [style], content_masks=[soft], style_masks=[1 - soft / 2])
    x = (torch.rand(1, 3, 4, 4, generator=gen, dtype=torch.float64) * 255).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda img: loss(img).total, (x,), eps=1e-4, atol=1e-3, rtol=1e-3
    )


def test_each_style_is_matched_only_inside_its_region() -> None:
    # Style A on the left, B on the right: an output whose left part *is* style A's
    # texture and right part style B's has no style loss, whatever each style image
    # holds elsewhere.
    net = random_net()
    left, right, other = random_image(16, 8, 6), random_image(16, 8, 7), random_image(16, 8, 8)
    x = torch.cat([left, right], dim=-1)
    style_a = torch.cat([left, other], dim=-1)
    style_b = torch.cat([other, right], dim=-1)
    # The masks leave out the two columns next to the seam, where relu1_1's 3x3
    # receptive field sees both halves.
    mask_a, mask_b = torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 16)
    mask_a[..., :7] = 1
    mask_b[..., 9:] = 1
    kw = dict(style_layers={"relu1_1": 1.0})  # before any pooling: the halves stay apart
    loss = _loss(
        net,
        x,
        [style_a, style_b],
        content_masks=[mask_a, mask_b],
        style_masks=[mask_a, mask_b],
        **kw,
    )
    unmasked = _loss(net, x, [style_a, style_b], **kw)
    assert unmasked(x).style.item() > 1
    assert loss(x).style.item() < 1e-9 * unmasked(x).style.item()


def test_mask_sizes_are_checked() -> None:
    net = random_net()
    content, style = random_image(8, 8, 0), random_image(8, 8, 1)
    with pytest.raises(ValueError, match="content mask"):
        _loss(net, content, [style], content_masks=[torch.ones(1, 1, 8, 9)])
    with pytest.raises(ValueError, match="content_masks: 2 entries"):
        _loss(net, content, [style], content_masks=[None, None])


# --- scale control ---------------------------------------------------------------------


def test_each_style_drives_only_its_own_layers() -> None:
    # Fine style A at relu1_1, coarse style B at relu2_1. The style loss is then,
    # term by term, A's relu1_1 term plus B's relu2_1 term: B's image has no say at
    # relu1_1 and A's none at relu2_1.
    net = random_net()
    content, a, b, b2 = (random_image(16, 16, s) for s in range(4))
    x = random_image(16, 16, 9)
    per_style = [{"relu1_1": 1.0}, {"relu2_1": 1.0}]
    loss = _loss(net, content, [a, b], style_layers_per_style=per_style, style_blend=[0.3, 0.7])
    assert set(loss.layers) == {"relu1_1", "relu2_1"}

    def term(image: torch.Tensor, style: torch.Tensor, layer: str) -> float:
        g = gram_matrix(net(image, [layer])[layer])
        return torch.mean((g - gram_matrix(net(style, [layer])[layer])) ** 2).item()

    expected = 500.0 * (0.3 * term(x, a, "relu1_1") + 0.7 * term(x, b, "relu2_1"))
    assert loss(x).style.item() == pytest.approx(expected, rel=1e-5)
    # Swapping B's image changes the loss by exactly the change of B's relu2_1 term.
    swapped = _loss(net, content, [a, b2], style_layers_per_style=per_style, style_blend=[0.3, 0.7])
    change = 500.0 * 0.7 * (term(x, b2, "relu2_1") - term(x, b, "relu2_1"))
    assert swapped(x).style.item() - loss(x).style.item() == pytest.approx(change, rel=1e-4)


def test_per_style_layer_weights_follow_the_exponent_within_each_list() -> None:
    s = Settings(
        style_layers_per_style=("relu1_1,relu2_1", "relu3_1, relu4_1 ,relu5_1"),
        style_layer_weight_exp=2.0,
    )
    a, b = s.style_layer_weights_per_style()
    assert a == pytest.approx({"relu1_1": 1 / 3, "relu2_1": 2 / 3})
    assert b == pytest.approx({"relu3_1": 1 / 7, "relu4_1": 2 / 7, "relu5_1": 4 / 7})
    assert s.all_style_layers() == {"relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"}
    assert Settings().style_layer_weights_per_style() is None
    assert Settings().all_style_layers() == set(Settings().style_layers)


# --- settings and command line ---------------------------------------------------------


def test_cli_flags_of_the_controls() -> None:
    args = build_parser().parse_args(
        [
            "stylize",
            "c.png",
            "a.png",
            "b.png",
            "-o",
            "o.png",
            "--colour-control",
            "histogram",
            "--colour-histogram-method",
            "eigen",
            "--content-mask",
            "ma.png",
            "mb.png",
            "--style-mask",
            "sa.png",
            "sb.png",
            "--style-layers-per-style",
            "relu1_1,relu2_1",
            "relu3_1,relu4_1,relu5_1",
        ]
    )
    s = settings_from_args(args).validate(n_styles=2)
    assert (s.color_control, s.color_histogram_method) == ("histogram", "eigen")
    assert s.content_masks == ("ma.png", "mb.png") and s.style_masks == ("sa.png", "sb.png")
    assert s.style_layers_per_style == ("relu1_1,relu2_1", "relu3_1,relu4_1,relu5_1")
    defaults = settings_from_args(build_parser().parse_args(["stylize", "c", "s", "-o", "o.png"]))
    assert defaults.color_control == "none" and defaults.content_masks is None


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"color_control": "lab"}, "color_control: choose from"),
        ({"color_histogram_method": "pca"}, "color_histogram_method: choose from"),
        ({"content_masks": ("a.png",)}, "content_masks: got 1 for 2"),
        ({"style_masks": ("a.png", "b.png", "c.png")}, "style_masks: got 3 for 2"),
        ({"style_layers_per_style": ("relu1_1", "relu9_1")}, "unknown layer 'relu9_1'"),
        ({"style_layers_per_style": ("relu1_1", " , ")}, "no layers"),
        ({"style_layers_per_style": ("relu1_1,relu1_1", "relu2_1")}, "repeated"),
    ],
)
def test_validation_of_the_controls(changes: dict, needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        Settings(**changes).validate(n_styles=2)


def test_settings_of_the_controls_round_trip() -> None:
    s = Settings(
        color_control="luminance",
        content_masks=("a.png", "b.png"),
        style_layers_per_style=("relu1_1", "relu2_1"),
    )
    assert Settings.from_dict(s.to_dict()) == s
    assert Settings.from_dict({"content_masks": ["m.png"]}).content_masks == ("m.png",)


# --- end to end, with the real network -------------------------------------------------


def texture(rgb: tuple[int, int, int], seed: int, size: int = 48) -> Image.Image:
    """A noisy texture around one colour: luminance grain plus a little colour noise."""
    rng = np.random.default_rng(seed)
    grain = rng.normal(0, 25, (size, size, 1)) + rng.normal(0, 10, (size, size, 3))
    return Image.fromarray(np.clip(np.array(rgb, float) + grain, 0, 255).astype(np.uint8))


def soft_photo(size: int = 48, *, grey: bool = False) -> Image.Image:
    """A content image of gentle gradients, grey or faintly coloured."""
    y, x = np.mgrid[0:size, 0:size]
    if grey:  # no colour of its own, so neither style is favoured
        rgb = np.repeat((90 + x + y / 2)[..., None], 3, axis=-1)
    else:
        rgb = np.stack([100 + x, 110 + y, 105 + 0 * x], axis=-1)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def run(stylizer) -> impasto.StylizeResult:
    for _ in stylizer.run():
        pass
    return stylizer.result()


@pytest.mark.slow
def test_spatial_control_gives_each_half_its_own_style(tmp_path: Path) -> None:
    red, blue = (200, 50, 40), (40, 60, 200)
    left = Image.fromarray(((np.mgrid[0:48, 0:48][1] < 24) * 255).astype(np.uint8))
    left.save(tmp_path / "left.png")
    ImageOps.invert(left).save(tmp_path / "right.png")
    settings = Settings(
        size=48,
        scales=1,
        iterations=30,
        tolerance=0,
        seed=0,
        initial="noise",  # the start the margins below were measured from
        content_masks=(str(tmp_path / "left.png"), str(tmp_path / "right.png")),
    )
    styles = [texture(red, 1), texture(blue, 2)]
    result = run(impasto.Stylizer(soft_photo(grey=True), styles, settings))
    out = np.asarray(result.image, dtype=np.float64)
    # Measured margins over seeds 0-2: 59-64 on the left and 34-38 on the right (blue
    # comes slower from the noise start, whose mean pixel is warm).
    for half, own, other in ((out[:, :24], red, blue), (out[:, 24:], blue, red)):
        mean = half.reshape(-1, 3).mean(axis=0)
        assert np.linalg.norm(mean - own) < np.linalg.norm(mean - other) - 15, mean


def test_masks_and_colour_maps_follow_every_scale() -> None:
    # Two scales (24 and 32 px): the masks are resized from the full-size images, and
    # propagated to the layers, at each.
    left = Image.fromarray(((np.mgrid[0:64, 0:64][1] < 30) * 255).astype(np.uint8))
    settings = Settings(
        size=32,
        scales=2,
        min_size=24,
        coarse_iterations=1,
        iterations=1,
        seed=0,
        color_control="histogram",
    )
    st = impasto.Stylizer(
        soft_photo(64),
        [texture((200, 50, 40), 1, 64), texture((40, 60, 200), 2, 64)],
        settings,
        content_mask_images=[left, ImageOps.invert(left)],
        style_mask_images=[left, left],
    )
    seen = []
    for progress in st.run():
        masks = st.loss_fn.region_masks
        seen.append((progress.size, masks[0]["relu1_1"].shape[-2:], masks[1]["relu5_1"].shape[-2:]))
    assert seen == [((24, 24), (24, 24), (2, 2)), ((32, 32), (32, 32), (2, 2))]
    assert st.result().image.size == (32, 32)


@pytest.mark.slow
def test_luminance_only_transfer_keeps_the_content_chroma() -> None:
    content = soft_photo(32)
    # From noise: the luminance must come from the style, not be the photo's.
    settings = Settings(size=32, scales=1, iterations=8, tolerance=0, seed=0, initial="noise")
    st = impasto.Stylizer(
        content, [texture((200, 50, 40), 3, 32)], settings.replace(color_control="luminance")
    )
    previews = []
    for progress in st.run():
        previews.append(progress.image())
    result = st.result()
    out = rgb_to_yiq(np.asarray(result.image, dtype=np.float64))
    ref = rgb_to_yiq(np.asarray(content, dtype=np.float64))
    chroma = np.abs(out[..., 1:] - ref[..., 1:])
    # Only 8-bit rounding, and clipping where luminance and chroma leave the RGB cube.
    assert chroma.mean() < 0.5 and np.percentile(chroma, 99) < 2, chroma.max()
    assert np.abs(out[..., 0] - ref[..., 0]).mean() > 2  # ... while the luminance is stylised
    preview = rgb_to_yiq(np.asarray(previews[-1], dtype=np.float64))
    assert np.abs(preview[..., 1:] - ref[..., 1:]).mean() < 0.5
    # Plain transfer of a red style does move the chroma.
    plain = rgb_to_yiq(
        np.asarray(
            run(impasto.Stylizer(content, [texture((200, 50, 40), 3, 32)], settings)).image,
            dtype=np.float64,
        )
    )
    assert np.abs(plain[..., 1:] - ref[..., 1:]).mean() > 2


def test_histogram_control_feeds_the_network_recoloured_styles() -> None:
    content = Image.fromarray(correlated_colours((24, 32), seed=20).clip(0, 255).astype(np.uint8))
    style = Image.fromarray(correlated_colours((30, 30), seed=21).clip(0, 255).astype(np.uint8))
    settings = Settings(size=32, scales=1, iterations=0, seed=0, color_control="histogram")
    st = impasto.Stylizer(content, [style], settings)
    assert st.targets.content_color is None
    # Measured at the final size, on the images the network is given.
    size = st.inputs.style_size(0, 32, settings)
    fed = st.targets.style_colors[0].apply_tensor(st.targets.tensor(style, size))
    fed = fed[0].permute(1, 2, 0).double().numpy()
    mu_c, cov_c = color_statistics(np.asarray(content, dtype=np.float64))
    mu_f, cov_f = color_statistics(fed)
    np.testing.assert_allclose(mu_f, mu_c, atol=1e-3)
    np.testing.assert_allclose(cov_f, cov_c, rtol=1e-4, atol=1e-2)


def test_scale_control_runs_the_network_deep_enough() -> None:
    settings = Settings(
        size=32,
        scales=1,
        iterations=1,
        seed=0,
        content_layers=("relu2_1",),
        style_layers=("relu1_1",),
        style_layers_per_style=("relu1_1", "relu3_1"),
    )
    st = impasto.Stylizer(soft_photo(32), [texture((200, 50, 40), 4, 32)] * 2, settings)
    assert st.targets.net.layer_names[-1] == "relu3_1"
    assert st.loss_fn.style_layer_sets == [{"relu1_1": 1.0}, {"relu3_1": 1.0}]
    assert np.isfinite(run(st).losses["total"])
    # ... and no deeper than needed: the shared --style-layers (to relu5_1) are unused.
    shallow = settings.replace(style_layers=Settings().style_layers)
    shallow = shallow.replace(style_layers_per_style=("relu1_1", "relu2_1"))
    st = impasto.Stylizer(soft_photo(32), [texture((200, 50, 40), 4, 32)] * 2, shallow)
    assert st.targets.net.layer_names[-1] == "relu2_1"
    assert np.isfinite(run(st).losses["total"])


def test_an_all_black_mask_is_refused() -> None:
    black = Image.new("L", (32, 32), 0)
    with pytest.raises(SettingsError, match="content mask 1 is black everywhere"):
        impasto.Stylizer(
            soft_photo(32),
            [texture((200, 50, 40), 5, 32)],
            Settings(size=32, scales=1, iterations=0, seed=0),
            content_mask_images=[black],
        )
