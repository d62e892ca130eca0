"""The smallest images the network can take, checked before any work."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import SettingsError
from ..model.topology import LAYERS
from ..settings import Settings
from .schedule import fit_long_side


def smallest_side(layers: set[str]) -> int:
    """The shortest image side the network can take up to the deepest of ``layers``.

    Each 2x2 pooling halves the image, so a layer whose total stride is s needs at
    least s pixels for one position made of whole pooling windows; the total
    variation needs two pixels in each direction.
    """
    return max([2, *(LAYERS[name].stride for name in layers)])


def check_working_sizes(
    settings: Settings,
    content_size: tuple[int, int],
    style_sizes: Sequence[tuple[int, int]],
    *,
    content_name: str = "the content image",
    style_names: Sequence[str] | None = None,
) -> None:
    """Refuse, before any work, an image that some scale would make too small.

    The content is checked at every scale of the schedule and each style at the
    size the style scale gives it there (masks are resized to those sizes). The
    error names the image, its working size and the smallest ``size`` that works.
    """
    need = smallest_side(set(settings.content_layer_weights()) | settings.all_style_layers())
    final = settings.size or max(content_size)
    names = list(style_names or [f"style image {i + 1}" for i in range(len(style_sizes))])

    def style_fits(index: int, long_side: int) -> bool:
        scaled = max(16, round(long_side * settings.style_scale_for(index)))
        return min(fit_long_side(style_sizes[index], scaled)) >= need

    checks = [(content_name, content_size, lambda n: min(fit_long_side(content_size, n)) >= need)]
    checks += [
        (name, size, lambda n, i=i: style_fits(i, n))
        for i, (name, size) in enumerate(zip(names, style_sizes))
    ]
    for long_side in settings.scale_sizes(final):
        for name, (w, h), fits in checks:
            if fits(long_side):
                continue
            # A coarse scale is set by min_size, the final one by size.
            setting = "size" if long_side == final else "min_size"
            smallest = next((n for n in range(long_side, 32769) if fits(n)), None)
            advice = f"use {smallest} px or more" if smallest else "no size gives it that many"
            raise SettingsError(
                f"{name} ({w}x{h}) is too small at {long_side} px: the network needs at "
                f"least {need} px on its short side; {advice}",
                setting=setting,
            )
