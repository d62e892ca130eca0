"""The Python API: :func:`stylize` an image, :func:`score` any image under the loss."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image

from .devices import Machine
from .io import images
from .results import Progress, StopReason, StylizeResult
from .run.inputs import ImageInput, RunInputs, Targets, open_image
from .run.loop import Stylizer
from .run.tiling import resolve_tile
from .settings import Settings


def stylize(
    content: ImageInput,
    styles: ImageInput | Sequence[ImageInput],
    *,
    callback: Callable[[Progress], None] | None = None,
    settings: Settings | None = None,
    **overrides: Any,
) -> StylizeResult:
    """Paint ``content`` in the style of ``styles``; keyword arguments are settings.

    >>> result = stylize("photo.jpg", ["starry.jpg"], size=256, iterations=200)
    >>> result.save("out.png")

    Ctrl-C stops the run and returns the best image so far (``result.stopped``
    then says ``"interrupted"``).
    """
    settings = (settings or Settings()).replace(**overrides)
    stylizer = Stylizer(content, styles, settings)
    try:
        for progress in stylizer.run():
            if callback is not None:
                callback(progress)
    except KeyboardInterrupt:
        return stylizer.result(StopReason.INTERRUPTED)
    return stylizer.result()


def score(
    image: ImageInput,
    content: ImageInput,
    styles: ImageInput | Sequence[ImageInput],
    settings: Settings | None = None,
) -> dict[str, float]:
    """Loss terms of ``image`` under ``settings``, at the image's own size.

    The content is resized to the image and the styles scaled as in stylisation, so
    outputs of different runs, and of other tools, are compared on one definition.
    """
    img, _ = open_image(image)
    if isinstance(styles, (str, os.PathLike, Image.Image)):
        styles = [styles]
    settings = settings or Settings()
    # Scores are float32 unless a precision is asked for: the definition stays the
    # same on every machine, whatever precision the runs being compared used.
    precision = "fp32" if settings.precision == "auto" else settings.precision
    settings = settings.replace(size=max(img.size), scales=1, seed=0, precision=precision)
    settings.validate(n_styles=len(styles))
    machine = Machine.resolve(settings.device, settings.precision)
    machine.prepare(settings.threads)
    try:
        inputs = RunInputs.open(content, styles, settings)
        inputs.check_sizes(settings)
        settings.tile = resolve_tile(settings, inputs.size(settings.size), machine)
        targets = Targets(inputs, settings, machine, settings.size)
        loss = targets.loss(img.size)
        x = targets.as_network_sees(images.to_tensor(img).to(machine.device))
        with torch.no_grad(), machine.autocast():
            return loss(x).as_floats()
    finally:
        machine.release()
