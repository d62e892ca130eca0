"""impasto: neural style transfer after Gatys, Ecker & Bethge (CVPR 2016).

>>> import impasto
>>> result = impasto.stylize("photo.jpg", ["painting.jpg"], size=256, iterations=200)
>>> result.save("painted.png")
"""

from __future__ import annotations

from .api import score, stylize
from .batches import batch
from .errors import ImageError, ImpastoError, SettingsError, VideoError, WeightsError
from .results import Progress, StopReason, StylizeResult
from .run.loop import Stylizer
from .settings import Settings
from .video import VideoSettings, stylize_video

__version__ = "0.1.0"

__all__ = [
    "ImageError",
    "ImpastoError",
    "Progress",
    "Settings",
    "SettingsError",
    "StopReason",
    "StylizeResult",
    "Stylizer",
    "VideoError",
    "VideoSettings",
    "WeightsError",
    "__version__",
    "batch",
    "score",
    "stylize",
    "stylize_video",
]
