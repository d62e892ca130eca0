"""torchvision's VGG19 (IMAGENET1K_V1), fetched by URL through torch.hub.

torch.hub checks the download against the hash in its file name and keeps it in its
own cache, so a second run reads it from disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from ...errors import WeightsError
from .checks import check_state_dict, one_line
from .convention import TORCHVISION, VGGWeights
from .pytorch import from_features

TORCHVISION_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"


def load_torchvision() -> VGGWeights:
    """torchvision's VGG19 (IMAGENET1K_V1), from torch.hub's cache or downloaded into it."""
    try:
        raw = torch.hub.load_state_dict_from_url(
            TORCHVISION_URL, map_location="cpu", progress=True, check_hash=True, weights_only=True
        )
    except OSError as e:  # URLError, HTTPError, timeouts and disk errors are all OSError
        raise WeightsError(
            f"could not download the torchvision VGG19 weights from {TORCHVISION_URL} "
            f"({one_line(e)}); download that file elsewhere and pass --weights PATH, "
            "or use --weights default"
        ) from None
    except Exception as e:  # failed hash check (RuntimeError) or a bad file
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(TORCHVISION_URL).name
        raise WeightsError(
            f"the downloaded torchvision VGG19 weights are unusable ({one_line(e)}); delete "
            f"{cached} if it exists and retry, or use --weights default"
        ) from None
    source = f"torchvision VGG19 IMAGENET1K_V1 ({TORCHVISION_URL})"
    if not isinstance(raw, Mapping):
        raise WeightsError(f"{source}: not a state dict")
    state = from_features(dict(raw), source)
    check_state_dict(state, source)
    return VGGWeights(state, TORCHVISION, "torchvision VGG19 IMAGENET1K_V1")
