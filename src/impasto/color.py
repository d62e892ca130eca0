"""Colour handling: post-hoc colour preservation."""

from __future__ import annotations

import numpy as np
from PIL import Image

# RGB -> YIQ (NTSC). Y is luminance; I and Q carry the chroma.
RGB_TO_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]],
    dtype=np.float64,
)
YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ)


def rgb_to_yiq(rgb: np.ndarray) -> np.ndarray:
    return rgb @ RGB_TO_YIQ.T


def yiq_to_rgb(yiq: np.ndarray) -> np.ndarray:
    return yiq @ YIQ_TO_RGB.T


def preserve_colors(content: Image.Image, stylized: Image.Image) -> Image.Image:
    """The stylised image's luminance with the content image's chroma (I and Q)."""
    if content.size != stylized.size:
        content = content.resize(stylized.size, Image.Resampling.LANCZOS)
    c = rgb_to_yiq(np.asarray(content.convert("RGB"), dtype=np.float64))
    s = rgb_to_yiq(np.asarray(stylized.convert("RGB"), dtype=np.float64))
    mixed = np.concatenate([s[..., :1], c[..., 1:]], axis=-1)
    rgb = np.clip(yiq_to_rgb(mixed), 0, 255).round().astype(np.uint8)
    return Image.fromarray(rgb, "RGB")
