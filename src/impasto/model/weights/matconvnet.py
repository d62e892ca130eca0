"""MatConvNet's ``imagenet-vgg-verydeep-19.mat``, the file anishathalye/neural-style reads."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import WeightsError
from ..topology import CONV_LAYERS
from .checks import StateDict, one_line, require
from .convention import InputConvention


def read_matconvnet(path: Path) -> tuple[StateDict, InputConvention, str]:
    """MatConvNet's SimpleNN file, in both the old and the new release's format.

    The kernels in these files are [width, height, in, out]: neural-style (anishathalye)
    and its many derivatives swap the first two axes before TensorFlow's cross-correlation
    over [height, width, in, out], and get the published results. So ``mat[w, h, i, o]``
    is torch's ``weight[o, i, h, w]``, a (3, 2, 1, 0) transpose. Fields are looked up by
    name, which works for both releases (they order the layer fields differently). The
    layers carry impasto's own names (``conv1_1``).
    """
    scipy_io: Any = require("scipy.io", "scipy", path)
    try:
        data = scipy_io.loadmat(str(path))
    except Exception as e:  # scipy raises many types for damaged files
        raise WeightsError(f"{path}: cannot read as a MATLAB file ({one_line(e)})") from None
    expected = "expected MatConvNet's imagenet-vgg-verydeep-19.mat layout"
    try:
        layers = data["layers"][0]
        mean = _mean_pixel(data)
    except (KeyError, IndexError, ValueError, TypeError) as e:
        raise WeightsError(f"{path}: {expected} ({one_line(e)})") from None
    state: StateDict = {}
    for layer in layers:
        try:
            record = layer[0][0]
            name = str(record["name"][0])
            if name not in CONV_LAYERS:
                continue
            kernels, bias = record["weights"][0][0], record["weights"][0][1]
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise WeightsError(f"{path}: {expected} ({one_line(e)})") from None
        kernels = np.asarray(kernels, dtype=np.float32)
        if kernels.ndim != 4:
            raise WeightsError(f"{path}: {name} kernels have shape {kernels.shape}, expected 4-D")
        state[f"{name}.weight"] = torch.from_numpy(
            np.ascontiguousarray(kernels.transpose(3, 2, 1, 0))
        )
        state[f"{name}.bias"] = torch.from_numpy(
            np.asarray(bias, dtype=np.float32).reshape(-1).copy()
        )
    return state, InputConvention("RGB", 255.0, mean), "MatConvNet VGG19"


def _mean_pixel(data: Mapping[str, Any]) -> tuple[float, float, float]:
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
