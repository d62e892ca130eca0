"""Everything a run needs before its first iteration, made in one place.

A loop over frames, tiles or batch items prepares its runs the same way:
settings checked and a seed drawn, the machine chosen, the images decoded and
checked, the schedule planned, the memory checked, the network built.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from ..devices import Machine
from ..settings import Settings
from .inputs import ImageInput, RunInputs, Targets
from .schedule import Schedule
from .tiled import TileMeter
from .tiling import plan_tiles


@dataclass
class RunSetup:
    settings: Settings  # validated, with the seed that will be used
    machine: Machine
    inputs: RunInputs
    schedule: Schedule
    targets: Targets


def prepare(
    content: ImageInput,
    styles: ImageInput | Sequence[ImageInput],
    settings: Settings | None = None,
    *,
    content_mask_images: Sequence[Image.Image] | None = None,
    style_mask_images: Sequence[Image.Image] | None = None,
    tiles: TileMeter | None = None,
) -> RunSetup:
    """Check and load everything, failing on bad input before any heavy work.

    ``content_mask_images`` and ``style_mask_images``, when given, are used instead
    of reading the files that the settings name (spatial control). ``tiles`` meters
    the passes over tiles, from the targets of a first scale that is tiled on.
    """
    settings = (settings or Settings()).replace()
    if isinstance(styles, (str, os.PathLike, Image.Image)):
        styles = [styles]
    settings.validate(n_styles=len(styles))
    if settings.seed is None:
        settings.seed = random.SystemRandom().randrange(2**31)
    machine = Machine.resolve(settings.device, settings.precision)
    machine.prepare(settings.threads)
    inputs = RunInputs.open(
        content,
        styles,
        settings,
        content_mask_images=content_mask_images,
        style_mask_images=style_mask_images,
    )
    inputs.check_sizes(settings)
    final = max(inputs.content.size) if settings.size == 0 else settings.size
    long_sides = settings.scale_sizes(final)
    schedule = Schedule(
        sizes=tuple(inputs.size(n) for n in long_sides),
        planned=tuple(settings.scale_iterations(len(long_sides))),
    )
    settings.tile, schedule = plan_tiles(settings, schedule, machine)  # checks the memory
    targets = Targets(inputs, settings, machine, final, tiles)
    return RunSetup(settings, machine, inputs, schedule, targets)
