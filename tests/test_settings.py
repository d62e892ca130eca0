"""Settings: derived weights, validation, and the CLI built from them."""

from __future__ import annotations

import dataclasses
import io
import pickle
from pathlib import Path

import pytest
from PIL import Image

import impasto
from impasto import cli
from impasto.cli import build_parser, settings_from_args
from impasto.errors import SettingsError
from impasto.settings import VGG19_LAYERS, Settings

SIZE_MESSAGE = "must be between 16 and 32768 pixels (or 0), got 8"


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
        ({"content_weight": -1.0}, 1, "content_weight: "),
        ({"content_layers": ("relu9_9",)}, 1, "content_layers: unknown layer"),
        ({"style_blend_weights": (1.0,)}, 2, "style_blend_weights: "),
        ({"style_scales": (1.0, 2.0, 3.0)}, 2, "style_scales: "),
        ({"size": 3}, 1, "size: "),
        ({"learning_rate": 0.0}, 1, "learning_rate: "),
        ({"content_weight_blend": 1.5}, 1, "content_weight_blend: "),
        ({"lbfgs_history": 0}, 1, "lbfgs_history: "),
    ],
)
def test_validation_names_the_setting(changes: dict, n_styles: int, needle: str) -> None:
    with pytest.raises(SettingsError, match=f"^{needle}") as caught:
        Settings(**changes).validate(n_styles)
    assert caught.value.setting == needle.split(":")[0]


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


# --- one validator, naming what the user typed ---------------------------------------------
def test_a_misspelt_keyword_is_a_settings_error_with_a_suggestion() -> None:
    with pytest.raises(
        impasto.SettingsError, match=r"style_wieght \(did you mean style_weight\?\)"
    ):
        impasto.Settings(style_wieght=3)
    with pytest.raises(SettingsError, match="did you mean content_weight"):
        Settings().replace(content_wieght=3)
    with pytest.raises(SettingsError, match="did you mean tv_weight"):
        Settings.from_dict({"tv_weigth": 1})


def test_settings_check_themselves_when_made() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings(size=8)
    assert caught.value.setting == "size" and caught.value.message == SIZE_MESSAGE
    assert str(caught.value) == f"size: {SIZE_MESSAGE}"
    with pytest.raises(SettingsError, match=r"^optimizer: choose from lbfgs, adam"):
        Settings().replace(optimizer="sgd")
    with pytest.raises(SettingsError, match=r"^epsilon: must be a finite number, got nan"):
        Settings(epsilon=float("nan"))
    with pytest.raises(SettingsError, match=r"^seed: must be between 0 and 2\*\*63 - 1"):
        Settings(seed=2**63)
    with pytest.raises(SettingsError, match=r"^coarse_iterations: expected int"):
        Settings(coarse_iterations=10**400)
    settings = Settings()
    settings.size = 8  # changed in place: validate() checks again
    with pytest.raises(SettingsError) as caught:
        settings.validate()
    assert str(caught.value) == f"size: {SIZE_MESSAGE}"


def test_settings_errors_keep_their_setting_through_pickling() -> None:
    error = pickle.loads(pickle.dumps(SettingsError(SIZE_MESSAGE, setting="size")))
    assert (error.setting, str(error)) == ("size", f"size: {SIZE_MESSAGE}")


def test_style_layer_weights_per_style_follow_the_exponent_too() -> None:
    s = Settings(style_layer_weight_exp=2.0, style_layers_per_style=("relu1_1,relu2_1", "relu3_1"))
    assert s.style_layer_weights_per_style() == [
        pytest.approx({"relu1_1": 1 / 3, "relu2_1": 2 / 3}),
        {"relu3_1": 1.0},
    ]


def test_the_cli_names_the_flag_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["stylize", "c.png", "s.png", "-o", str(tmp_path / "o.png"), "--size", "8"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"impasto: error: --size: {SIZE_MESSAGE}\n"
    assert "Traceback" not in err


def test_the_web_answers_422_naming_the_setting(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from impasto.web import ServerConfig, create_app

    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), (200, 100, 50)).save(buffer, format="PNG")
    image = buffer.getvalue()
    config = ServerConfig(workdir=str(tmp_path), device="cpu")
    with TestClient(create_app(config, engine=lambda *args: None)) as client:
        r = client.post(
            "/api/jobs",
            files=[("content", ("c.png", image, "image/png")), ("styles", ("s.png", image))],
            data={"settings": '{"size": 8}'},
        )
    assert r.status_code == 422
    assert r.json()["detail"] == f"size: {SIZE_MESSAGE}"
