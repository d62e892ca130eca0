"""Keras' ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``: HWIO kernels, by layer name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import WeightsError
from ..topology import KERAS_NAMES
from .checks import StateDict, one_line, require


def read_keras(path: Path) -> tuple[StateDict, None, str]:
    """Keras' VGG19 weights, with TensorFlow's cross-correlation kernels (HWIO).

    The file does not name its input convention; the registry knows it is Caffe's.
    """
    h5py: Any = require("h5py", "h5py", path)
    try:
        f = h5py.File(path, "r")
    except Exception as e:  # h5py raises OSError, but also others on odd files
        raise WeightsError(f"{path}: cannot read as an HDF5 file ({one_line(e)})") from None
    with f:
        # A whole saved model keeps its weights under model_weights.
        root = f.get("model_weights", f)
        state: StateDict = {}
        in_channels = 3
        for name, layer in KERAS_NAMES.items():
            if layer not in root:
                raise WeightsError(
                    f"{path}: no layer {layer}; expected Keras VGG19 weights with groups "
                    "block1_conv1 ... block5_conv4"
                )
            kernel, bias = _kernel_and_bias(root[layer], h5py.Dataset)
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
    return state, None, "Keras VGG19"


def _kernel_and_bias(group: Any, dataset_type: type) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The layer's 4-D and 1-D datasets, wherever Keras nested them.

    Old files: ``block1_conv1/block1_conv1_W_1:0``; Keras 2: ``block1_conv1/block1_conv1/kernel:0``.
    """
    found: dict[int, np.ndarray] = {}

    def visit(_: str, obj: Any) -> None:
        if isinstance(obj, dataset_type) and obj.ndim in (1, 4):
            found.setdefault(obj.ndim, np.asarray(obj[()], dtype=np.float32))

    group.visititems(visit)
    return found.get(4), found.get(1)
