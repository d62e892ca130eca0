"""impasto: neural style transfer after Gatys, Ecker & Bethge (CVPR 2016).

>>> import impasto
>>> result = impasto.stylize("photo.jpg", ["painting.jpg"], size=256, iterations=200)
>>> result.save("painted.png")
"""

from __future__ import annotations

from .errors import ImageError, ImpastoError, SettingsError, WeightsError
from .optimize import Progress, Stylizer, StylizeResult, score, stylize
from .settings import Settings

__version__ = "0.1.0"

__all__ = [
    "ImageError",
    "ImpastoError",
    "Progress",
    "Settings",
    "SettingsError",
    "StylizeResult",
    "Stylizer",
    "WeightsError",
    "__version__",
    "score",
    "stylize",
]
