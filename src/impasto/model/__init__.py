"""The VGG19 network: its structure, the feature extractor, and its weights.

- ``topology``: the layers, channels, strides and receptive fields, and the names other
  tools give the layers (plain data, no torch).
- ``features``: the :class:`~impasto.model.features.FeatureExtractor` protocol the
  losses and evaluators are written against.
- ``vgg``: :class:`~impasto.model.vgg.VGG19Features`, its implementation.
- ``weights``: every weights source impasto reads, converted to one state dict and the
  input convention it was trained with.

This package imports nothing itself, so that settings can read the topology without
torch.
"""
