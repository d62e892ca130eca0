"""Errors that reach the user as one clear line, never as a traceback."""

from __future__ import annotations


class ImpastoError(Exception):
    """A problem the user can fix: bad input, bad settings, missing weights.

    The command line prints ``str(error)`` on one line and exits with status 2.
    """


class ImageError(ImpastoError):
    """An image file that cannot be read, or an output path that cannot be written."""


class VideoError(ImpastoError):
    """A video that cannot be read, is damaged or unsupported, or cannot be written."""


class WeightsError(ImpastoError):
    """Network weights that are missing, corrupt or in an unexpected layout."""


class SettingsError(ImpastoError):
    """A setting outside its allowed range, or settings that contradict each other.

    ``setting`` is the name of the setting at fault, where there is one; ``str(error)``
    then starts with it as the Python API spells it (``size: must be ...``), and the
    command line and the web app name it their own way from ``setting`` and ``message``.
    """

    def __init__(self, message: str, setting: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.setting = setting

    def __str__(self) -> str:
        return f"{self.setting}: {self.message}" if self.setting else self.message

    def __reduce__(self) -> tuple[type[SettingsError], tuple[str, str | None]]:
        return type(self), (self.message, self.setting)
