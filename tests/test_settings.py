"""Settings: derived weights, validation, and the CLI built from them."""

from __future__ import annotations

import dataclasses

import pytest

from impasto.cli import build_parser, settings_from_args
from impasto.errors import SettingsError
from impasto.settings import VGG19_LAYERS, Settings


def test_layer_names() -> None:
    assert len(VGG19_LAYERS) == 16 * 2 + 5
    assert VGG19_LAYERS[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert VGG19_LAYERS[-1] == "pool5"


def test_style_layer_weights_follow_exponent() -> None:
    w = Settings(style_layer_weight_exp=2.0).style_layer_weights()
    raw = [1, 2, 4, 8, 16]
    assert list(w.values()) == pytest.approx([r / 31 for r in raw])
    assert sum(Settings().style_layer_weights().values()) == pytest.approx(1.0)
    assert list(Settings().style_layer_weights().values()) == pytest.approx([0.2] * 5)


def test_content_blend_and_zero_weights_dropped() -> None:
    assert Settings().content_layer_weights() == {"relu4_2": 1.0}
    assert Settings(content_weight_blend=0.25).content_layer_weights() == {
        "relu4_2": 0.25,
        "relu5_2": 0.75,
    }
    assert Settings(content_layers=("relu3_1",)).content_layer_weights() == {"relu3_1": 1.0}


def test_style_blend_normalised() -> None:
    assert Settings(style_blend_weights=(1, 3)).style_blend(2) == pytest.approx([0.25, 0.75])
    assert Settings().style_blend(4) == pytest.approx([0.25] * 4)


@pytest.mark.parametrize(
    ("changes", "n_styles", "needle"),
    [
        ({"content_weight": -1.0}, 1, "--content-weight"),
        ({"content_layers": ("relu9_9",)}, 1, "unknown layer"),
        ({"style_blend_weights": (1.0,)}, 2, "--style-blend-weights"),
        ({"style_scales": (1.0, 2.0, 3.0)}, 2, "--style-scales"),
        ({"size": 3}, 1, "--size"),
        ({"learning_rate": 0.0}, 1, "--learning-rate"),
        ({"content_weight_blend": 1.5}, 1, "--content-weight-blend"),
        ({"lbfgs_history": 0}, 1, "--lbfgs-history"),
    ],
)
def test_validation_names_the_setting(changes: dict, n_styles: int, needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        Settings(**changes).validate(n_styles)


def test_dict_round_trip_and_unknown_keys() -> None:
    s = Settings(style_weight=100.0, style_layers=("relu1_1",), seed=5)
    assert Settings.from_dict(s.to_dict()) == s
    with pytest.raises(SettingsError, match="unknown setting"):
        Settings.from_dict({"styel_weight": 1})
    assert Settings.from_dict({"iterations": "12", "preserve_colors": "true"}).iterations == 12


def test_cli_defaults_equal_settings_defaults() -> None:
    args = build_parser().parse_args(["stylize", "c.png", "s.png", "-o", "o.png"])
    assert settings_from_args(args) == Settings()


def test_every_setting_has_a_cli_option_with_help_showing_default() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["stylize"]
    by_dest = {a.dest: a for a in sub._actions}
    for f in dataclasses.fields(Settings):
        assert f.name in by_dest, f.name
        assert "(default:" in by_dest[f.name].help


def test_cli_reference_flag_names() -> None:
    args = build_parser().parse_args(
        [
            "stylize",
            "c.png",
            "s1.png",
            "s2.png",
            "-o",
            "o.png",
            "--content-weight",
            "7",
            "--content-weight-blend",
            "0.5",
            "--style-weight",
            "9",
            "--style-layer-weight-exp",
            "0.5",
            "--style-blend-weights",
            "1",
            "2",
            "--style-scale",
            "0.5",
            "--tv-weight",
            "3",
            "--learning-rate",
            "2",
            "--iterations",
            "4",
            "--pooling",
            "avg",
            "--preserve-colors",
            "--initial",
            "content",
            "--initial-noiseblend",
            "0.1",
        ]
    )
    s = settings_from_args(args)
    assert (s.content_weight, s.content_weight_blend, s.style_weight) == (7, 0.5, 9)
    assert s.style_blend_weights == (1.0, 2.0) and s.style_scales == (0.5,)
    assert (s.tv_weight, s.learning_rate, s.iterations, s.pooling) == (3, 2, 4, "avg")
    assert s.preserve_colors and s.initial == "content" and s.initial_noiseblend == 0.1
