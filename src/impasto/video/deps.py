"""The video extra's libraries, imported only when a video is read, written or tracked."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import ImpastoError

EXTRA = "video"
_PACKAGES = {"av": "av (PyAV)", "cv2": "opencv-python-headless"}


def require(module: str) -> ModuleType:
    """Import ``av`` or ``cv2``, or say in one line which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImpastoError(
            f"video needs {_PACKAGES[module]}, which is not installed: "
            f"pip install 'impasto[{EXTRA}]'"
        ) from None
