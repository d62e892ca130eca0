"""Colour control (Gatys, Ecker, Bethge, Hertzmann & Shechtman, CVPR 2017, section 5).

Three ways to keep the content's colours:

- :func:`preserve_colors`: post-hoc. Stylise as usual, then keep the result's
  luminance and put the content's chroma back. The simplest variant; the style's
  colours still shape the texture during the optimisation.
- Luminance-only transfer (the paper's section 5.1): stylise grey images, whose
  luminance the style matches in mean and standard deviation to the content's,
  then recombine the result's luminance with the content's chroma
  (:func:`luminance_transform`, :func:`combine_luminance`).
- Colour histogram matching (section 5.2): before the transfer, move the style
  image's colours to the content's mean and covariance with a linear map
  (:func:`histogram_transform`).

Every control is an affine map of each pixel's RGB value, ``p' = A p + b``
(:class:`ColorTransform`). Resampling an image is a convex combination of pixels,
which an affine map commutes with, so a transform measured once on the full-size
inputs applies unchanged to the inputs of every scale of a multi-scale run.

Pixel values are in the units of the images: 0-255 floats. Luminance and chroma
are YIQ (NTSC), as in the paper.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..settings import HISTOGRAM_METHODS

# RGB -> YIQ (NTSC). Y is luminance; I and Q carry the chroma.
RGB_TO_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]],
    dtype=np.float64,
)
YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ)
LUMA = RGB_TO_YIQ[0]

# Eigenvalues of a colour covariance below this fraction of the largest (or below
# _ABS_FLOOR, in 0-255 units squared) are raised to it before a factorisation, so that
# grey or flat images give a finite transform. Natural images are far above it, so
# for them the match stays exact.
_REL_FLOOR = 1e-6
_ABS_FLOOR = 1e-6


def rgb_to_yiq(rgb: np.ndarray) -> np.ndarray:
    return rgb @ RGB_TO_YIQ.T


def yiq_to_rgb(yiq: np.ndarray) -> np.ndarray:
    return yiq @ YIQ_TO_RGB.T


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Y of YIQ: shape (..., 3) -> (...)."""
    return rgb @ LUMA


@dataclass(frozen=True)
class ColorTransform:
    """``p' = matrix @ p + offset`` for every pixel p (RGB, 0-255 units)."""

    matrix: np.ndarray  # (3, 3)
    offset: np.ndarray  # (3,)

    @classmethod
    def identity(cls) -> ColorTransform:
        return cls(np.eye(3), np.zeros(3))

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """Transform a float array of shape (..., 3); no clipping."""
        return rgb @ self.matrix.T + self.offset

    def apply_tensor(self, image: torch.Tensor) -> torch.Tensor:
        """Transform an (N, 3, H, W) tensor; no clipping, so statistics stay exact."""
        m = torch.as_tensor(self.matrix, dtype=image.dtype, device=image.device)
        b = torch.as_tensor(self.offset, dtype=image.dtype, device=image.device)
        return torch.einsum("ij,njhw->nihw", m, image) + b.view(1, 3, 1, 1)


def pixels(image: Image.Image | np.ndarray) -> np.ndarray:
    """An RGB image as a float64 array of shape (H*W, 3)."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"), dtype=np.float64)
    return np.asarray(image, dtype=np.float64).reshape(-1, 3)


def color_statistics(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (3,) and covariance (3, 3) of the pixels of an (..., 3) array.

    The covariance is the population one (divided by the number of pixels), the
    statistic of the image itself rather than an estimate for a larger population.
    """
    p = rgb.reshape(-1, 3).astype(np.float64)
    mean = p.mean(axis=0)
    centred = p - mean
    return mean, centred.T @ centred / len(p)


# --- luminance-only transfer (section 5.1) ---------------------------------------------


def _luminance_mean_std(rgb: np.ndarray) -> tuple[float, float]:
    y = luminance(rgb.reshape(-1, 3).astype(np.float64))
    return float(y.mean()), float(y.std())


def grey_transform() -> ColorTransform:
    """RGB -> (Y, Y, Y): the grey image the network sees in luminance-only transfer."""
    return ColorTransform(np.tile(LUMA, (3, 1)), np.zeros(3))


def luminance_transform(
    content: Image.Image | np.ndarray, style: Image.Image | np.ndarray
) -> ColorTransform:
    """RGB -> grey (Y', Y', Y') with the style's luminance matched to the content's.

    Y' = sigma_C / sigma_S * (Y_S - mu_S) + mu_C, so that the style image's luminance
    has the content's mean and standard deviation (the paper's eq. 6).
    """
    mu_c, sigma_c = _luminance_mean_std(pixels(content))
    mu_s, sigma_s = _luminance_mean_std(pixels(style))
    # A flat style image has no contrast to rescale: keep it flat at the content's mean.
    gain = sigma_c / sigma_s if sigma_s > np.sqrt(_ABS_FLOOR) else 0.0
    return ColorTransform(gain * np.tile(LUMA, (3, 1)), np.full(3, mu_c - gain * mu_s))


def combine_luminance(luma_from: np.ndarray, chroma_from: np.ndarray) -> np.ndarray:
    """RGB with Y of ``luma_from`` and I, Q of ``chroma_from`` (float arrays (..., 3))."""
    y = luminance(luma_from)
    yiq = rgb_to_yiq(chroma_from)
    yiq[..., 0] = y
    return yiq_to_rgb(yiq)


def _to_8bit(rgb: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(rgb, 0, 255).round().astype(np.uint8), "RGB")


def recombine_luminance(stylized: np.ndarray, content: Image.Image) -> Image.Image:
    """The end of luminance-only transfer: the result's Y with the content's I and Q.

    ``stylized`` is the optimised image as a float array (H, W, 3), before any 8-bit
    rounding; the content image is resized to it.
    """
    h, w = stylized.shape[:2]
    if content.size != (w, h):
        content = content.resize((w, h), Image.Resampling.LANCZOS)
    return _to_8bit(combine_luminance(stylized, pixels(content).reshape(h, w, 3)))


def preserve_colors(content: Image.Image, stylized: Image.Image) -> Image.Image:
    """The stylised image's luminance with the content image's chroma (I and Q).

    The post-hoc variant of colour control: unlike luminance-only transfer, the
    optimisation itself still sees the style's colours.
    """
    if content.size != stylized.size:
        content = content.resize(stylized.size, Image.Resampling.LANCZOS)
    w, h = stylized.size
    s = pixels(stylized).reshape(h, w, 3)
    c = pixels(content).reshape(h, w, 3)
    return _to_8bit(combine_luminance(s, c))


# --- what the network sees --------------------------------------------------------------


class LuminanceView(nn.Module):
    """A feature extractor that sees only the luminance of its input, as (Y, Y, Y).

    In luminance-only transfer the targets are grey, but the iterate has three
    channels and only its luminance is kept in the end. Shown the iterate in colour,
    the network would let the optimiser paint part of the style into chroma, which
    the result then drops: the style came out as a faint, even ripple. Shown
    (Y, Y, Y), every step changes the image's luminance alone.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    @staticmethod
    def grey(image: torch.Tensor) -> torch.Tensor:
        r, g, b = LUMA.tolist()
        y = r * image[:, 0:1] + g * image[:, 1:2] + b * image[:, 2:3]
        return y.expand(-1, 3, -1, -1)

    def forward(self, image: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        return self.net(self.grey(image), layers)

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        return self.net.preprocess(self.grey(image))


# Chroma (the length of (I, Q), in grey levels) that most pixels of a grey image stay
# under: JPEG and scanning leave a little colour noise in black-and-white pictures.
GREY_CHROMA = 6.0
GREY_SHARE = 0.99


def is_grey(image: Image.Image) -> bool:
    """Whether a picture is black and white: 99% of its pixels have almost no chroma."""
    if image.mode in ("L", "LA", "I", "I;16", "F", "1"):
        return True
    small = image.convert("RGB")
    small.thumbnail((256, 256))
    yiq = rgb_to_yiq(pixels(small))
    chroma = np.hypot(yiq[:, 1], yiq[:, 2])
    return float(np.quantile(chroma, GREY_SHARE)) < GREY_CHROMA


RENDERINGS = ("rgb", "content chroma", "grey")


@dataclass(frozen=True)
class ColorPlan:
    """How a run treats colour: the maps applied to its inputs, what the network sees of
    the iterate, and how the iterate becomes the result.

    ``content`` and ``styles`` map the content and each style image (None: as it is);
    ``luminance_only`` shows the network only the iterate's luminance
    (:class:`LuminanceView`); ``rendering`` is one of :data:`RENDERINGS`.
    """

    content: ColorTransform | None = None
    styles: list[ColorTransform | None] = field(default_factory=list)
    luminance_only: bool = False
    rendering: str = "rgb"


def plan_colors(
    control: str,
    content: Image.Image,
    styles: Sequence[Image.Image],
    method: str = "cholesky",
) -> ColorPlan:
    """The colour plan of a run: ``control`` is the --color-control setting.

    ``content`` and ``styles`` are the inputs at the size the maps are measured at.
    With no control asked for and only black-and-white styles, the result is painted
    in grey, as the styles are: matching colour features to a grey style's Gram
    matrices leaves coloured fringes along the photo's edges.
    """
    n = len(styles)
    if control == "luminance":
        maps = [luminance_transform(content, img) for img in styles]
        return ColorPlan(grey_transform(), maps, True, "content chroma")
    if control == "histogram":
        return ColorPlan(None, [histogram_transform(content, img, method) for img in styles])
    if styles and all(is_grey(img) for img in styles):
        return ColorPlan(grey_transform(), [None] * n, True, "grey")
    return ColorPlan(None, [None] * n)


def render_grey(stylized: np.ndarray) -> Image.Image:
    """A black-and-white result: the luminance of the float image (H, W, 3), as RGB."""
    y = luminance(stylized)
    return _to_8bit(np.repeat(y[..., None], 3, axis=-1))


# --- colour histogram matching (section 5.2) -------------------------------------------


def _floored(cov: np.ndarray) -> np.ndarray:
    """The covariance, with eigenvalues too small to factorise raised to a floor."""
    values, vectors = np.linalg.eigh(cov)
    floor = max(_REL_FLOOR * values.max(initial=0.0), _ABS_FLOOR)
    if values.min() >= floor:
        return cov  # untouched, so the match is exact up to rounding
    return (vectors * np.maximum(values, floor)) @ vectors.T


def _sqrt_and_inverse_sqrt(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric square root of a covariance and its inverse, via its eigenvectors."""
    values, vectors = np.linalg.eigh(cov)
    root = np.sqrt(values)
    return (vectors * root) @ vectors.T, (vectors / root) @ vectors.T


def histogram_transform(
    content: Image.Image | np.ndarray,
    style: Image.Image | np.ndarray,
    method: str = "cholesky",
) -> ColorTransform:
    """The linear map that gives the style image the content's colour mean and covariance.

    p_S' = A p_S + b with b = mu_C - A mu_S and A Sigma_S A^T = Sigma_C. The paper
    offers two choices of A:

    - ``cholesky``: A = L_C L_S^-1 with Sigma = L L^T the Cholesky factorisations;
    - ``eigen``: A = Sigma_C^1/2 Sigma_S^-1/2 with symmetric square roots from the
      eigendecomposition, the colour transform of Image Analogies (Hertzmann et al.
      2001).

    Both match mean and covariance exactly; they differ in how the colours are
    paired. Grey or flat images, whose covariance is singular, are regularised
    (see ``_floored``) and then cannot be matched exactly.
    """
    if method not in HISTOGRAM_METHODS:
        raise ValueError(f"unknown histogram method {method!r}; choose from {HISTOGRAM_METHODS}")
    mu_c, cov_c = color_statistics(pixels(content))
    mu_s, cov_s = color_statistics(pixels(style))
    cov_c, cov_s = _floored(cov_c), _floored(cov_s)
    if method == "cholesky":
        # A = L_C L_S^-1, computed as a triangular solve: A^T = L_S^-T L_C^T.
        l_c, l_s = np.linalg.cholesky(cov_c), np.linalg.cholesky(cov_s)
        matrix = np.linalg.solve(l_s.T, l_c.T).T
    else:
        root_c, _ = _sqrt_and_inverse_sqrt(cov_c)
        _, inv_root_s = _sqrt_and_inverse_sqrt(cov_s)
        matrix = root_c @ inv_root_s
    return ColorTransform(matrix, mu_c - matrix @ mu_s)


def match_color_histogram(
    style: np.ndarray, content: np.ndarray, method: str = "cholesky"
) -> np.ndarray:
    """The style image (float array (..., 3)) with the content's colour mean and covariance."""
    return histogram_transform(content, style, method).apply(style)
