"""What the losses and evaluators need from a network: named features of an image."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from torch import Tensor


@runtime_checkable
class FeatureExtractor(Protocol):
    """A frozen network that maps RGB images in pixel units (0-255) to named features.

    ``layer_names`` lists the layers it can return, in network order.
    """

    layer_names: tuple[str, ...]

    def __call__(self, image: Tensor, layers: Iterable[str]) -> dict[str, Tensor]:
        """Features (N, C, H', W') of ``image`` (N, 3, H, W) at each of ``layers``."""
        ...

    def preprocess(self, image: Tensor) -> Tensor:
        """``image`` in the network's own input convention (channel order, range, mean)."""
        ...
