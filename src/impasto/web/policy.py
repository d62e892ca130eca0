"""What a web client may ask for: the server's limits on top of the settings' own checks.

The settings are the same :class:`~impasto.settings.Settings` the command line uses,
checked by the same code (choices, ranges, layer names); on top of that a client must
send each value in the JSON type the schema gives (no ``"10"`` for 10, no ``true`` for
1), must not be able to make the server read its own files (``initial``, ``weights`` and
the masks can name paths), pick the device or other machine-wide knobs, or ask for more
work than the server's limits allow.

Text settings are refused unless known to be safe: one added to Settings later, which
might name a file, stays at its default here until it is listed below.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from typing import Any

from ..errors import SettingsError
from ..settings import Settings, base_type, check_names, field_types
from .config import ServerConfig

# The file choice of ``initial`` would be a path on the server.
WEB_INITIAL_CHOICES = ("auto", "noise", "content", "style")
# Decided by the server: the machine and its knobs (threads are per process, compiling
# costs minutes), the network, files written next to the output and console output. A
# client may leave them out or send the server's own value; anything else is refused.
FORCED: dict[str, Any] = {"checkpoint_every": 0, "print_every": 0, "threads": 0, "compile": False}
SERVER_CHOSEN = ("device", "weights", *FORCED)
# Text settings whose values Settings accepts only as VGG19 layer names, never as paths.
LAYER_SETTINGS = ("content_layers", "style_layers", "style_layers_per_style")

_TYPE_NAMES = {int: "integer", float: "number", bool: "boolean", str: "string"}


def server_values(config: ServerConfig) -> dict[str, Any]:
    """The value of every setting the server decides."""
    return {"device": config.device, "weights": config.weights, **FORCED}


def settings_from_client(
    data: Any, config: ServerConfig, remote_device: str | None = None
) -> Settings:
    """Settings from a client's JSON object; :class:`SettingsError` says what is wrong.

    ``remote_device`` is the kind of device (``cpu``, ``cuda``) the jobs' runs get
    where they run elsewhere (Ray tasks), else None: this server's own device."""
    if not isinstance(data, dict):
        raise SettingsError("settings must be a JSON object")
    check_names(data)
    check_json_types(data)
    fixed = server_values(config)
    for name in SERVER_CHOSEN:
        if name in data and data[name] != fixed[name]:
            raise SettingsError(
                f"this server decides it (it uses {fixed[name]!r}); leave the setting out",
                setting=name,
            )
    settings = Settings.from_dict({**data, **fixed}, strict=True)
    if settings.initial not in WEB_INITIAL_CHOICES:
        raise SettingsError(
            f"choose from {', '.join(WEB_INITIAL_CHOICES)}, got {settings.initial!r}",
            setting="initial",
        )
    _check_no_files(settings)
    check_machine(settings, config, remote_device)
    if settings.size:
        check_work(settings, settings.size, config)
    return settings


def check_json_types(data: dict[str, Any], types: dict[str, Any] | None = None) -> None:
    """Each value in the JSON type of its setting, as ``GET /api/settings`` lists it
    (``types``: the annotations of the settings' dataclass, by default Settings')."""
    types = types or field_types()
    for name, value in data.items():
        elem, is_array, nullable = base_type(types[name])
        if value is None:
            if not nullable:
                raise SettingsError("needs a value, got null", setting=name)
            continue
        kind = _TYPE_NAMES[elem]
        if is_array:
            if not isinstance(value, list) or not all(_is_json(elem, v) for v in value):
                raise SettingsError(f"expected an array of {kind}s, got {_shown(value)}", name)
        elif not _is_json(elem, value):
            raise SettingsError(f"expected {_article(kind)} {kind}, got {_shown(value)}", name)


def _is_json(elem: type, value: Any) -> bool:
    if elem is bool:
        return isinstance(value, bool)
    if elem is int:  # as JSON Schema: 3.0 is an integer, true is not
        if isinstance(value, float):
            return value.is_integer()
        return isinstance(value, int) and not isinstance(value, bool)
    if elem is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, str)


def _article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (ValueError, RecursionError):  # numbers too long to print, nesting too deep
        return f"a {type(value).__name__} too large to show"
    return text if len(text) <= 40 else text[:37] + "..."


@functools.cache
def _server_device(spec: str) -> Any:
    from ..devices import resolve_device

    return resolve_device(spec)


def check_machine(
    settings: Settings, config: ServerConfig, remote_device: str | None = None
) -> None:
    """Refuse a precision the jobs' device cannot run, before the job is queued: this
    server's device, or where the runs are Ray tasks, the kind of device they claim
    (``remote_device``) unless ``--device`` names one."""
    if settings.precision in ("auto", "fp32"):
        return
    import torch

    from ..devices import resolve_precision

    try:
        if remote_device is None:
            device, where = _server_device(config.device), "this server runs"
        else:
            kind = remote_device if config.device == "auto" else config.device
            device, where = torch.device(kind), "this server's Ray tasks run"
        resolve_precision(settings.precision, device)
    except SettingsError as e:
        # The device's own messages speak to the command line; say it for this server.
        detail = web_wording(e.message).removeprefix("precision ")
        raise SettingsError(f"{detail} ({where} on {device.type})", setting="precision") from None


def planned_iterations(settings: Settings, size: int) -> int:
    """Iterations a job will run at most, over all its scales, for an output of ``size``."""
    sizes = settings.scale_sizes(size)
    return sum(settings.scale_iterations(len(sizes)))


def check_work(settings: Settings, size: int, config: ServerConfig) -> int:
    """Refuse jobs above the server's limits; returns the planned number of iterations.

    ``size`` is the output's long side (the content image's own when the size setting is 0).
    """
    if size > config.max_size:
        allowed = f"this server allows at most {config.max_size} pixels"
        if settings.size:
            raise SettingsError(f"{allowed}, got {size}", setting="size")
        raise SettingsError(
            f"0 keeps the content image's size, {size} pixels here; {allowed}", setting="size"
        )
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


_FLAG = re.compile(r"--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)")


def web_wording(message: str) -> str:
    """A message written for the command line, with ``--size`` said as ``size``."""
    names = set(field_types())

    def name(match: re.Match[str]) -> str:
        setting = match.group(1).replace("-", "_")
        return setting if setting in names else match.group(0)

    return _FLAG.sub(name, message)


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
    fixed_values = server_values(config)
    types = field_types()
    fields = []
    for f in dataclasses.fields(Settings):
        elem, is_tuple, optional = base_type(types[f.name])
        choices = f.metadata.get("choices")
        help_text = f.metadata["help"]
        if f.name == "initial":
            choices = WEB_INITIAL_CHOICES
            help_text = "starting image: noise (the paper), the content image, or the first style"
        editable = f.name not in SERVER_CHOSEN and (elem is not str or _text_is_free(f.name))
        fixed = fixed_values.get(f.name, defaults[f.name]) if not editable else None
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
