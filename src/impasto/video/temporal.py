"""The temporal loss of Ruder, Dosovitskiy & Brox (2016), added to the Gatys loss.

For frame i, with ω_j the stylised frame i - j warped into frame i by the optical
flow and c_j the weights of where that flow is reliable (:mod:`.flow`):

    L_temporal = γ · Σ_j (1/D) Σ_k c_jk (x_k − ω_jk)²,   D = W·H·3

in pixel units (0-255). With one earlier frame this is the short-term loss; with
several, the long-term one, whose weights count each pixel once.

Its targets live in buffers that are overwritten in place for every frame, so a
CUDA graph captured once over this loss replays correctly for every later frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..loss.gatys import GatysLoss, LossTerms


@dataclass
class VideoLossTerms(LossTerms):
    """The Gatys terms plus the temporal one; ``total`` is the sum of all four."""

    temporal: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        terms = (self.content, self.style, self.tv, self.temporal, self.total)
        content, style, tv, temporal, total = torch.stack(
            [t.detach().float() for t in terms]
        ).tolist()
        return {"content": content, "style": style, "tv": tv, "temporal": temporal, "total": total}


def temporal_loss(image: torch.Tensor, warped: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ_j mean(c_j (x − ω_j)²) for x (1, 3, H, W), ω (J, 3, H, W) and c (J, 1, H, W).

    The mean over the 3·H·W values of each frame is the paper's 1/D normalisation.
    """
    return (weights * (image.float() - warped) ** 2).mean(dim=(1, 2, 3)).sum()


class VideoLoss(nn.Module):
    """The Gatys loss of a frame plus γ times its temporal loss against earlier frames."""

    def __init__(
        self,
        gatys: GatysLoss,
        weight: float,
        frames: int,
        size: tuple[int, int],
        device: torch.device,
    ):
        super().__init__()
        self.gatys = gatys
        self.weight = weight
        w, h = size
        self.register_buffer("warped", torch.zeros(frames, 3, h, w, device=device))
        self.register_buffer("weights", torch.zeros(frames, 1, h, w, device=device))

    def set_targets(self, warped: torch.Tensor, weights: torch.Tensor) -> None:
        """The earlier frames warped into this one and their weights (zero: no term)."""
        self.warped.copy_(warped)
        self.weights.copy_(weights)

    def clear_targets(self) -> None:
        """No temporal term (the first frame, or frames painted independently)."""
        self.weights.zero_()

    def forward(self, image: torch.Tensor) -> VideoLossTerms:
        terms = self.gatys(image)
        # Computed even at zero weight: a captured graph needs the same operations
        # for every frame, and the term is cheap beside the network.
        temporal = self.weight * temporal_loss(image, self.warped, self.weights)
        return VideoLossTerms(
            terms.content, terms.style, terms.tv, terms.total + temporal, temporal
        )
