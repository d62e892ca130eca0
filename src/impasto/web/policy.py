"""What a web client may ask for: the server's limits on top of the settings' own checks.

The settings are the same :class:`~impasto.settings.Settings` the command line uses,
checked by the same code (choices, ranges, layer names); on top of that a client must
not be able to make the server read its own files (``initial``, ``weights`` and the
masks can name paths), pick the device, or ask for more work than the server's limits
allow.

Text settings are refused unless known to be safe: one added to Settings later, which
might name a file, stays at its default here until it is listed below.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import SettingsError
from ..settings import Settings, base_type, field_types
from .config import ServerConfig

# The file choice of ``initial`` would be a path on the server.
WEB_INITIAL_CHOICES = ("auto", "noise", "content", "style")
# The server decides these; a client's value is replaced (or refused, for weights).
SERVER_CHOSEN = ("device", "weights")
# Fixed on the server: files written next to the output, console output, and machine-wide
# knobs (threads are per process, compiling costs minutes) are not a client's business.
FORCED: dict[str, Any] = {"checkpoint_every": 0, "print_every": 0, "threads": 0, "compile": False}
# Text settings whose values Settings accepts only as VGG19 layer names, never as paths.
LAYER_SETTINGS = ("content_layers", "style_layers", "style_layers_per_style")

_TYPE_NAMES = {int: "integer", float: "number", bool: "boolean", str: "string"}


def settings_from_client(data: Any, config: ServerConfig) -> Settings:
    """Settings from a client's JSON object; :class:`SettingsError` says what is wrong."""
    if not isinstance(data, dict):
        raise SettingsError("settings must be a JSON object")
    if data.get("weights", config.weights) != config.weights:
        raise SettingsError(
            f"this server always uses {config.weights!r}; leave the setting out", setting="weights"
        )
    _check_nulls(data)
    settings = Settings.from_dict(data, strict=True)
    settings = settings.replace(device=config.device, weights=config.weights, **FORCED)
    if settings.initial not in WEB_INITIAL_CHOICES:
        raise SettingsError(
            f"choose from {', '.join(WEB_INITIAL_CHOICES)}, got {settings.initial!r}",
            setting="initial",
        )
    _check_no_files(settings)
    if settings.size:
        check_work(settings, settings.size, config)
    return settings


def planned_iterations(settings: Settings, size: int) -> int:
    """Iterations a job will run at most, over all its scales, for an output of ``size``."""
    sizes = settings.scale_sizes(size)
    return sum(settings.scale_iterations(len(sizes)))


def check_work(settings: Settings, size: int, config: ServerConfig) -> int:
    """Refuse jobs above the server's limits; returns the planned number of iterations.

    ``size`` is the output's long side (the content image's own when the size setting is 0).
    """
    if size > config.max_size:
        allowed = f"this server allows at most {config.max_size} pixels, got {size}"
        if settings.size:
            raise SettingsError(allowed, setting="size")
        raise SettingsError(f"size (0 = the content image's size): {allowed}")
    largest = max(settings.style_scales) * size
    if largest > config.max_size:
        raise SettingsError(
            f"style images would be {round(largest)} pixels long; this server allows at most "
            f"{config.max_size}",
            setting="style_scales",
        )
    planned = planned_iterations(settings, size)
    if planned > config.max_iterations:
        raise SettingsError(
            f"this job would run up to {planned} iterations (all scales together); this "
            f"server allows at most {config.max_iterations}",
            setting="iterations",
        )
    return planned


def _check_nulls(data: dict[str, Any]) -> None:
    # In the client's words: JSON's null, for a setting that has no "let impasto choose".
    types = field_types()
    for name, value in data.items():
        if value is None and name in types and not base_type(types[name])[2]:
            raise SettingsError("needs a value, got null", setting=name)


def _text_is_free(name: str) -> bool:
    """Whether a client may set a text setting to something other than its default."""
    field = next(f for f in dataclasses.fields(Settings) if f.name == name)
    return bool(field.metadata.get("choices")) or name == "initial" or name in LAYER_SETTINGS


def _check_no_files(settings: Settings) -> None:
    """Text settings that could name files on the server keep their defaults."""
    defaults = Settings()
    for name, annotation in field_types().items():
        if base_type(annotation)[0] is not str or name in SERVER_CHOSEN or _text_is_free(name):
            continue
        if getattr(settings, name) != getattr(defaults, name):
            raise SettingsError(
                "not available in the web app (it names files on the server)", setting=name
            )


def settings_schema(config: ServerConfig) -> list[dict[str, Any]]:
    """Every setting with its type, default, help and choices, for building a form."""
    defaults = Settings().to_dict()
    types = field_types()
    fields = []
    for f in dataclasses.fields(Settings):
        elem, is_tuple, optional = base_type(types[f.name])
        choices = f.metadata.get("choices")
        help_text = f.metadata["help"]
        fixed: Any = None
        editable = elem is not str or _text_is_free(f.name)
        if f.name == "initial":
            choices = WEB_INITIAL_CHOICES
            help_text = "starting image: noise (the paper), the content image, or the first style"
        elif f.name == "device":
            fixed = config.device
        elif f.name == "weights":
            fixed = config.weights
        elif f.name in FORCED:
            fixed = FORCED[f.name]
        if fixed is not None or not editable:
            editable, fixed = False, defaults[f.name] if fixed is None else fixed
        maximum = {"size": config.max_size, "iterations": config.max_iterations}.get(f.name)
        fields.append(
            {
                "name": f.name,
                "type": _TYPE_NAMES[elem],
                "array": is_tuple,
                "nullable": optional,
                "default": defaults[f.name],
                "help": help_text,
                "group": f.metadata["group"],
                "choices": list(choices) if choices else None,
                "maximum": maximum,
                "editable": editable,
                "server_value": fixed,
            }
        )
    return fields
