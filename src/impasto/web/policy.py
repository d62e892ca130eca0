"""What a web client may ask for: its settings checked against the server's rules.

The settings are the same :class:`~impasto.settings.Settings` the command line uses,
with the same validation; on top of that a client must not be able to make the
server read its own files (``initial``, ``weights`` and the masks can name paths), pick
the device, or ask for more work than the server's limits allow.

Text settings are refused unless known to be safe: one added to Settings later, which
might name a file, stays at its default here until it is listed below.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from ..errors import SettingsError
from ..settings import VGG19_LAYERS, Settings, base_type, field_types
from .config import ServerConfig

# The file choice of ``initial`` would be a path on the server.
WEB_INITIAL_CHOICES = ("auto", "noise", "content", "style")
# The server decides these; a client's value is replaced (or refused, for weights).
SERVER_CHOSEN = ("device", "weights")
# Fixed on the server: files written next to the output, console output, and machine-wide
# knobs (threads are per process, compiling costs minutes) are not a client's business.
FORCED: dict[str, Any] = {"checkpoint_every": 0, "print_every": 0, "threads": 0, "compile": False}
# Text settings whose values are VGG19 layer names (checked here, whatever validate() does).
LAYER_SETTINGS = ("content_layers", "style_layers", "style_layers_per_style")
# Seeds beyond this overflow torch's generator.
MAX_SEED = 2**63 - 1

_TYPE_NAMES = {int: "integer", float: "number", bool: "boolean", str: "string"}
_FLAG = re.compile(r"^--([a-z0-9-]+):")


def web_message(error: Exception) -> str:
    """A settings error in the page's words: ``size: ...`` rather than ``--size: ...``."""
    return _FLAG.sub(lambda m: m.group(1).replace("-", "_") + ":", str(error), count=1)


def settings_from_client(data: Any, config: ServerConfig) -> Settings:
    """Settings from a client's JSON object; :class:`SettingsError` says what is wrong."""
    if not isinstance(data, dict):
        raise SettingsError("settings must be a JSON object")
    weights = data.get("weights", config.weights)
    if weights != config.weights:
        raise SettingsError(
            f"--weights: this server always uses {config.weights!r}; leave the setting out"
        )
    _check_nulls(data)
    try:
        settings = Settings.from_dict(data, strict=True)
    except SettingsError:
        raise
    except (TypeError, ValueError, OverflowError) as e:
        # coerce() reports most type errors itself; huge integers for float fields are not.
        raise SettingsError(f"settings: {e}") from None
    forced = {k: v for k, v in FORCED.items() if k in field_types()}
    settings = settings.replace(device=config.device, weights=config.weights, **forced)
    _check_choices(settings)
    _check_finite(settings)
    if settings.initial not in WEB_INITIAL_CHOICES:
        raise SettingsError(
            f"--initial: choose from {', '.join(WEB_INITIAL_CHOICES)}, got {settings.initial!r}"
        )
    _check_text(settings)
    if settings.seed is not None and not 0 <= settings.seed <= MAX_SEED:
        raise SettingsError(f"--seed: must be between 0 and {MAX_SEED}, got {settings.seed}")
    settings.validate()
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
        what = "size" if settings.size else "size (0 = the content image's size)"
        raise SettingsError(
            f"--{what}: this server allows at most {config.max_size} pixels, got {size}"
        )
    largest = max(settings.style_scales) * size
    if largest > config.max_size:
        raise SettingsError(
            f"--style-scales: style images would be {round(largest)} pixels long; this server "
            f"allows at most {config.max_size}"
        )
    planned = planned_iterations(settings, size)
    if planned > config.max_iterations:
        raise SettingsError(
            f"--iterations: this job would run up to {planned} iterations (all scales "
            f"together); this server allows at most {config.max_iterations}"
        )
    return planned


def _check_nulls(data: dict[str, Any]) -> None:
    # coerce() passes None through untouched, even where the field has no "none" meaning.
    types = field_types()
    for name, value in data.items():
        if value is None and name in types and not base_type(types[name])[2]:
            raise SettingsError(f"--{_dash(name)}: needs a value, got null")


def _text_is_free(name: str) -> bool:
    """Whether a client may set a text setting to something other than its default."""
    field = next(f for f in dataclasses.fields(Settings) if f.name == name)
    return bool(field.metadata.get("choices")) or name == "initial" or name in LAYER_SETTINGS


def _check_text(settings: Settings) -> None:
    defaults = Settings()
    for name, annotation in field_types().items():
        if base_type(annotation)[0] is not str or name in SERVER_CHOSEN:
            continue
        value = getattr(settings, name)
        if name in LAYER_SETTINGS and value is not None:
            values = value if isinstance(value, tuple) else (value,)
            for layer in (x for v in values for x in re.split(r"[\s,]+", v) if x):
                if layer not in VGG19_LAYERS:
                    raise SettingsError(f"--{_dash(name)}: unknown layer {layer!r}")
        elif not _text_is_free(name) and value != getattr(defaults, name):
            raise SettingsError(
                f"--{_dash(name)}: not available in the web app (it names files on the server)"
            )


def _check_choices(settings: Settings) -> None:
    # Settings.validate() leaves choices to argparse; a web client bypasses argparse.
    for f in dataclasses.fields(Settings):
        choices = f.metadata.get("choices")
        value = getattr(settings, f.name)
        if choices and value not in choices:
            raise SettingsError(
                f"--{_dash(f.name)}: choose from {', '.join(choices)}, got {value!r}"
            )


def _check_finite(settings: Settings) -> None:
    # JSON allows NaN and Infinity, and some settings are only range-checked one way.
    for name, annotation in field_types().items():
        elem, _, _ = base_type(annotation)
        if elem is not float:
            continue
        value = getattr(settings, name)
        values = value if isinstance(value, tuple) else (value,)
        if any(v is not None and not math.isfinite(v) for v in values):
            raise SettingsError(f"--{_dash(name)}: must be a finite number, got {value}")


def _dash(name: str) -> str:
    return name.replace("_", "-")


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
