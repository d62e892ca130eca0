"""Optical flow between content frames, warping, and where the flow can be trusted.

Conventions (Ruder, Dosovitskiy & Brox 2016): for frames i and j, the flow w from
i to j gives for each pixel p of frame i where it is in frame j, p + w(p). Frame
j's image warped by w is then an image aligned with frame i: ``warp(image_j, w)``
samples image_j at p + w(p).

Where the flow cannot be trusted (Ruder et al., section 3.1), with ŵ = (û, v̂) the
flow from i to j and w̃ the flow from j to i sampled at p + ŵ(p):

- disoccluded: forward and backward flow disagree,
  |w̃ + ŵ|² > 0.01 (|w̃|² + |ŵ|²) + 0.5, or p + ŵ(p) is outside frame j;
- motion boundary: |∇û|² + |∇v̂|² > 0.01 |ŵ|² + 0.002.

The temporal loss weighs a pixel by c = 0 there and c = 1 elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .deps import require

# DIS presets of OpenCV by name (cv2.DISOPTICAL_FLOW_PRESET_*).
_DIS_PRESETS = {"dis-fast": "FAST", "dis": "MEDIUM", "dis-fine": "MEDIUM"}


def grey(rgb: np.ndarray) -> np.ndarray:
    """An (H, W, 3) uint8 RGB frame as the (H, W) uint8 grey image flow is computed on."""
    cv2 = require("cv2")
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def flow(a: np.ndarray, b: np.ndarray, method: str = "dis") -> np.ndarray:
    """The flow from grey frame ``a`` to grey frame ``b``: (H, W, 2) float32, (dx, dy)."""
    cv2 = require("cv2")
    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 15, 3, 5, 1.1, 0)
    preset = getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{_DIS_PRESETS[method]}")
    dis = cv2.DISOpticalFlow_create(preset)
    if method == "dis-fine":
        # Denser patches and more refinement than MEDIUM: sharper motion boundaries.
        dis.setPatchStride(2)
        dis.setVariationalRefinementIterations(10)
    return dis.calc(a, b, None)


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def warp(image: np.ndarray, w: np.ndarray, *, cubic: bool = False) -> np.ndarray:
    """``image`` (H, W[, C]) float32 sampled at p + w(p): aligned with the flow's source."""
    cv2 = require("cv2")
    h, wd = w.shape[:2]
    xs, ys = _grid(h, wd)
    # Bicubic for images: repeated warping frame after frame would blur bilinearly.
    interpolation = cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR
    return cv2.remap(
        image, xs + w[..., 0], ys + w[..., 1], interpolation, borderMode=cv2.BORDER_REPLICATE
    )


@dataclass
class Reliability:
    """Where the flow from frame i to frame j can be trusted, per pixel of frame i."""

    disoccluded: np.ndarray  # (H, W) bool: not visible in frame j (or leaves the frame)
    motion_boundary: np.ndarray  # (H, W) bool

    @property
    def weights(self) -> np.ndarray:
        """c of the temporal loss: (H, W) float32, 0 where unreliable, 1 elsewhere."""
        return (~(self.disoccluded | self.motion_boundary)).astype(np.float32)


def reliability(backward: np.ndarray, forward: np.ndarray) -> Reliability:
    """Ruder et al.'s tests, from the flow i -> j (``backward``) and j -> i (``forward``)."""
    h, w = backward.shape[:2]
    xs, ys = _grid(h, w)
    tx, ty = xs + backward[..., 0], ys + backward[..., 1]
    outside = (tx < 0) | (tx > w - 1) | (ty < 0) | (ty > h - 1)
    returned = warp(forward, backward)  # w̃: the forward flow where each pixel lands
    gap = np.sum((returned + backward) ** 2, axis=-1)
    size = np.sum(returned**2, axis=-1) + np.sum(backward**2, axis=-1)
    disoccluded = outside | (gap > 0.01 * size + 0.5)
    du_y, du_x = np.gradient(backward[..., 0])
    dv_y, dv_x = np.gradient(backward[..., 1])
    gradient = du_x**2 + du_y**2 + dv_x**2 + dv_y**2
    boundary = gradient > 0.01 * np.sum(backward**2, axis=-1) + 0.002
    return Reliability(disoccluded, boundary)


def long_term_weights(nearest_first: list[np.ndarray]) -> list[np.ndarray]:
    """Long-term weights: each pixel counts once, from the nearest earlier frame where
    the flow is reliable (Ruder et al., eq. 8): c_j = max(c_j - sum of nearer c, 0)."""
    taken = np.zeros_like(nearest_first[0])
    out = []
    for c in nearest_first:
        out.append(np.maximum(c - taken, 0))
        taken = np.minimum(taken + c, 1)
    return out
