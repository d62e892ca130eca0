"""Per-layer distances of an image to its content and styles: how painterly, how faithful.

The total loss mixes layers whose terms differ by orders of magnitude, so it cannot
say whether an image has a painting's large-scale structure. These are the terms of
the paper's objective layer by layer, on one fixed definition whatever settings or
tool made the image:

- VGG19 with the default (Caffe) weights and max pooling, in float32;
- the image as saved (8-bit), at its own size; the content resized to it; each style
  resized so that its long side is the image's (impasto's ``--style-scales 1``);
- unweighted distances: the ``relu4_2`` content distance is mean((F - F_c)²), the
  style distance at layer l is mean((G - G_s)²) with G = F Fᵀ / (C·H·W), averaged
  over the styles with equal weights. (The loss multiplies them by 5 and by
  500 · 1/5 = 100 with the paper's weights.)

``relu5_1`` carries a painting's large-scale structure (swirls, big strokes) and
``relu4_2`` the photo's layout: a lower ``relu5_1`` distance with no higher
``relu4_2`` distance is "as painterly at the coarse scale, and as faithful".
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from PIL import Image

from impasto.devices import Machine
from impasto.io import images
from impasto.loss.gatys import gram_matrix
from impasto.run.inputs import RunInputs, Targets, open_image
from impasto.settings import PAPER_STYLE_LAYERS, Settings

ImageInput = str | os.PathLike | Image.Image

CONTENT_LAYER = "relu4_2"


class Ruler:
    """Measures images against one content and its styles (targets cached per size)."""

    def __init__(self, content: ImageInput, styles: ImageInput | Sequence[ImageInput]):
        if isinstance(styles, (str, os.PathLike, Image.Image)):
            styles = [styles]
        self.settings = Settings(
            scales=1, seed=0, precision="fp32", device="cpu", pooling="max", color_control="none"
        )
        self.machine = Machine.resolve("cpu", "fp32")
        self.inputs = RunInputs.open(content, list(styles), self.settings)
        self.targets = Targets(self.inputs, self.settings, self.machine, 512)
        self.net = self.targets.net
        self._cache: dict[tuple[int, int], tuple[torch.Tensor, list[dict[str, torch.Tensor]]]] = {}

    def _targets_at(self, size: tuple[int, int]) -> tuple[torch.Tensor, list[dict]]:
        if size not in self._cache:
            inputs, s = self.inputs, self.settings
            with torch.no_grad():
                content = self.targets.tensor(inputs.content, size)
                c = self.net(content, [CONTENT_LAYER])[CONTENT_LAYER]
                grams = []
                for i, img in enumerate(inputs.styles):
                    style = self.targets.tensor(img, inputs.style_size(i, max(size), s))
                    feats = self.net(style, PAPER_STYLE_LAYERS)
                    grams.append({k: gram_matrix(v) for k, v in feats.items()})
            self._cache[size] = (c, grams)
        return self._cache[size]

    def __call__(self, image: ImageInput) -> dict[str, float]:
        """``{"content": ..., "relu1_1": ..., ..., "relu5_1": ...}``: unweighted distances."""
        img, _ = open_image(image)
        content, grams = self._targets_at(img.size)
        x = images.to_tensor(img)
        with torch.no_grad():
            feats = self.net(x, (CONTENT_LAYER, *PAPER_STYLE_LAYERS))
            out = {"content": float(torch.mean((feats[CONTENT_LAYER] - content) ** 2))}
            for layer in PAPER_STYLE_LAYERS:
                g = gram_matrix(feats[layer])
                d = sum(float(torch.mean((g - t[layer]) ** 2)) for t in grams) / len(grams)
                out[layer] = d
        return out


def mean_abs_difference(a: ImageInput, b: ImageInput) -> float:
    """Mean absolute difference of two images in grey levels (0-255), ``b`` resized to ``a``."""
    img_a, _ = open_image(a)
    img_b, _ = open_image(b)
    if img_b.size != img_a.size:
        img_b = img_b.resize(img_a.size, Image.Resampling.LANCZOS)
    return float((images.to_tensor(img_a) - images.to_tensor(img_b)).abs().mean())


def run_pastiche(
    content: str | os.PathLike,
    styles: Sequence[str | os.PathLike],
    size: int,
    steps: int,
    output: str | os.PathLike,
) -> float:
    """pastiche 1.6.0 with its own defaults for ``steps`` L-BFGS steps; returns the seconds.

    Its own image loading (bilinear, styles resized to the content's pixel count), loss
    (content 0.01 · mse at relu4_2, style 10/C² · mse of F Fᵀ/(H·W) per layer, no TV) and
    start (the content image), at a long side of ``size``: as ``pastiche --size SIZE``.
    """
    import time

    from pastiche.pastiche import PasticheArtist, save_image

    w, h = images.size_for(images.load_image(content), size)
    artist = PasticheArtist(str(content), [str(s) for s in styles], size=[h, w], device="cpu")
    t0 = time.perf_counter()
    for _ in range(steps):
        artist.draw()
    seconds = time.perf_counter() - t0
    save_image(artist.pastiche.detach(), str(output))
    return seconds
