"""The scale schedule, the ETA and the working-size check: pure functions, no network."""

from __future__ import annotations

import math

import pytest

from impasto.errors import SettingsError
from impasto.run.schedule import Schedule, fit_long_side, scale_iterations, scale_sizes
from impasto.run.sizes import check_working_sizes, smallest_side
from impasto.settings import Settings


def test_single_scale_is_the_final_size_alone() -> None:
    assert scale_sizes(512, scales=1, min_size=128, ratio=2**0.5) == [512]
    # An output no larger than the coarsest scale has nothing coarser to start from.
    assert scale_sizes(100, scales=0, min_size=128, ratio=2**0.5) == [100]


def test_automatic_scales_climb_by_the_ratio_from_min_size() -> None:
    # 512 / sqrt(2)^k for k = 4..0: 128, 181.02, 256, 362.04, 512.
    assert scale_sizes(512, scales=0, min_size=128, ratio=2**0.5) == [128, 181, 256, 362, 512]
    # 500 / 2^k >= 128 for k = 0, 1: two scales (125 would be under min_size).
    assert scale_sizes(500, scales=0, min_size=128, ratio=2.0) == [250, 500]


def test_a_given_number_of_scales_spans_min_size_to_the_output_evenly() -> None:
    # Three scales from 128 to 512: ratio (512/128)^(1/2) = 2.
    assert scale_sizes(512, scales=3, min_size=128, ratio=1.5) == [128, 256, 512]


def test_iterations_fall_geometrically_to_the_final_scale() -> None:
    assert scale_iterations(1, iterations=None, coarse_iterations=200) == [500]
    assert scale_iterations(3, iterations=None, coarse_iterations=200) == [
        200,
        round(200 * 0.2**0.5),
        40,
    ]
    assert scale_iterations(2, iterations=10, coarse_iterations=0) == [0, 10]
    assert scale_iterations(3, iterations=0, coarse_iterations=50) == [50, 50, 0]


def test_settings_derive_their_schedule_from_the_same_functions() -> None:
    s = Settings(scales=0, size=512)
    assert s.scale_sizes(512) == scale_sizes(512, scales=0, min_size=256, ratio=s.scale_ratio)
    assert s.scale_sizes(512) == [256, 362, 512] and s.scale_sizes(256) == [256]
    assert s.scale_iterations(5) == scale_iterations(5, iterations=None, coarse_iterations=200)


def test_fit_long_side_keeps_the_aspect_ratio() -> None:
    assert fit_long_side((640, 480), 512) == (512, 384)
    assert fit_long_side((480, 640), 100) == (75, 100)
    assert fit_long_side((1000, 1), 10) == (10, 1)  # never below one pixel


def schedule() -> Schedule:
    # Two scales: 10x10 (100 px of work per iteration) then 20x20 (400 px).
    return Schedule(sizes=((10, 10), (20, 20)), planned=(4, 2))


def test_planned_iterations_count_finished_scales_as_run() -> None:
    s = schedule()
    assert s.iterations([], 0, 0, finished=False) == 6
    assert s.iterations([], 0, 3, finished=True) == 3 + 2  # converged after 3 of 4
    assert s.iterations([3], 1, 1, finished=False) == 3 + 2


def test_eta_weights_the_iterations_left_by_their_pixels() -> None:
    s = schedule()
    assert math.isnan(s.eta(0.0, [], 0, 0))  # nothing done yet: nothing to go on
    # 2 coarse iterations (200 px of work) took 1 s: 2 coarse + 2 fine left = 200 + 800.
    assert s.eta(1.0, [], 0, 2) == pytest.approx(5.0)
    # 4 coarse + 1 fine = 800 px of work in 4 s; one fine iteration (400) left.
    assert s.eta(4.0, [4], 1, 1) == pytest.approx(2.0)


def test_a_schedule_needs_one_count_per_size() -> None:
    with pytest.raises(ValueError):
        Schedule(sizes=((10, 10),), planned=(1, 2))


def test_the_smallest_side_is_the_total_stride_of_the_deepest_layer() -> None:
    assert smallest_side({"relu1_1"}) == 2  # no pooling, but TV needs two pixels
    assert smallest_side({"relu4_2", "relu5_1"}) == 16  # four poolings before relu5_1
    assert smallest_side({"relu3_1"}) == 4


def test_a_panorama_too_thin_at_the_asked_size_is_refused_with_the_size_that_works() -> None:
    # 960x60 at 128 px is 128x8; the short side reaches 16 px at 248 (15.5 rounds to 16).
    with pytest.raises(SettingsError) as caught:
        check_working_sizes(Settings(size=128), (960, 60), [(300, 200)], content_name="pano.png")
    assert caught.value.setting == "size"
    assert "pano.png (960x60) is too small at 128 px" in str(caught.value)
    assert "use 248 px or more" in str(caught.value)
    check_working_sizes(Settings(size=248, scales=1), (960, 60), [(300, 200)])


def test_a_coarse_scale_too_small_names_min_size() -> None:
    settings = Settings(size=512, scales=3, min_size=16)
    with pytest.raises(SettingsError) as caught:
        check_working_sizes(settings, (640, 480), [(300, 300)])
    assert caught.value.setting == "min_size"
    assert "use 21 px or more" in str(caught.value)  # 21x16 (15.75 rounds to 16)


def test_styles_are_checked_at_the_size_their_scale_gives_them() -> None:
    settings = Settings(size=256, style_scales=(0.1,))
    # A 10:1 style at 0.1 x 256 = 26 px is 26x3: too thin.
    with pytest.raises(SettingsError, match=r"wide\.png \(1000x100\)"):
        check_working_sizes(settings, (640, 480), [(1000, 100)], style_names=["wide.png"])
    check_working_sizes(settings, (640, 480), [(100, 100)])
    # Shallow layers alone need only two pixels.
    shallow = settings.replace(style_layers=("relu1_1",), content_layers=("relu1_2",))
    check_working_sizes(shallow, (640, 480), [(1000, 100)])
