"""Errors that reach the user as one clear line, never as a traceback."""

from __future__ import annotations


class ImpastoError(Exception):
    """A problem the user can fix: bad input, bad settings, missing weights.

    The command line prints ``str(error)`` on one line and exits with status 2.
    """


class ImageError(ImpastoError):
    """An image file that cannot be read, or an output path that cannot be written."""


class WeightsError(ImpastoError):
    """Network weights that are missing, corrupt or in an unexpected layout."""


class SettingsError(ImpastoError):
    """A setting outside its allowed range, or settings that contradict each other."""
