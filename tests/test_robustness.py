"""Runs that survive interruption, numerical faults and sizes that cannot fit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import impasto
from impasto import devices
from impasto.run.state import load_state, save_state

pytestmark = pytest.mark.slow

RUN = [
    "--scales",
    "0",
    "--size",
    "64",
    "--min-size",
    "32",
    "--coarse-iterations",
    "8",
    "--iterations",
    "8",
    "--tolerance",
    "0",
    "--seed",
    "5",
]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "impasto", *args]


def test_sigint_saves_best_image_and_state_then_resume_matches(
    examples: tuple[Path, Path], tmp_path: Path
) -> None:
    content, style = examples
    reference = tmp_path / "reference.png"
    done = subprocess.run(
        cli("stylize", str(content), str(style), "-o", str(reference), "-q", *RUN),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr

    out = tmp_path / "out.png"
    proc = subprocess.Popen(
        cli("stylize", str(content), str(style), "-o", str(out), "--print-every", "1", *RUN),
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # interrupt in the middle scale (32 -> 45 -> 64 px)
        if "iteration 11/" in line:
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 130, rest
    assert "impasto resume" in rest
    state = tmp_path / "out.png.state.pt"
    assert state.is_file() and out.is_file()
    partial = Image.open(out)
    assert partial.size == Image.open(reference).size  # the best so far, at the final size

    st, extra = load_state(state)
    assert 11 <= st.iteration < 24 and st.scale == 1
    assert extra["output"] == str(out.resolve())

    resumed = subprocess.run(
        cli("resume", str(state), "-q"), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert not state.exists()  # a finished run leaves no state behind
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(reference)))


def test_state_round_trip_in_process(examples: tuple[Path, Path], tmp_path: Path) -> None:
    content, style = examples
    settings = impasto.Settings(size=32, scales=1, iterations=6, tolerance=0, seed=2)
    whole = impasto.stylize(content, style, settings=settings)
    st = impasto.Stylizer(content, style, settings)
    for p in st.run():
        if p.iteration == 3:
            break
    save_state(st, tmp_path / "s.pt")
    st2, _ = load_state(tmp_path / "s.pt")
    for _ in st2.run():
        pass
    assert np.array_equal(np.asarray(st2.result().image), np.asarray(whole.image))
    assert st2.result().iterations == 6


def test_nan_loss_falls_back_to_best_image(examples: tuple[Path, Path], tmp_path: Path) -> None:
    content, style = examples
    out = tmp_path / "nan.png"
    r = subprocess.run(
        cli(
            "stylize",
            str(content),
            str(style),
            "-o",
            str(out),
            "--size",
            "32",
            "--seed",
            "0",
            # Finite, but the weighted style loss overflows float32 to infinity.
            "--style-weight",
            "1e38",
            "--iterations",
            "20",
        ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 1
    assert "NaN or infinite" in r.stderr and "--learning-rate" in r.stderr
    assert "Traceback" not in r.stderr
    img = np.asarray(Image.open(out))
    assert img.shape == (21, 32, 3) and np.isfinite(img).all()


def test_size_that_cannot_fit_is_refused_before_work(
    examples: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    content, style = examples
    monkeypatch.setattr(devices, "available_memory_bytes", lambda device: 2 * 1024**3)
    with pytest.raises(impasto.ImpastoError, match=r"needs about .* GB .* use --size \d+"):
        impasto.Stylizer(content, style, impasto.Settings(size=4096, tile=0))
    fits = devices.largest_size_that_fits(2731, 4096, 2 * 1024**3, None)
    assert 64 <= fits < 4096
    w, h = fits, int(fits * 2731 / 4096)
    assert devices.estimate_memory_bytes(h, w) <= 2 * 1024**3


def test_ctrl_c_in_api_returns_best_so_far(examples: tuple[Path, Path]) -> None:
    content, style = examples

    def interrupt(p: impasto.Progress) -> None:
        if p.iteration == 4:
            raise KeyboardInterrupt

    result = impasto.stylize(content, style, size=32, iterations=50, seed=0, callback=interrupt)
    assert result.stopped == "interrupted" and result.iterations == 4
    assert result.image.size == (32, 21)


def test_transparent_content_keeps_its_alpha(tmp_path: Path, examples: tuple[Path, Path]) -> None:
    _, style = examples
    rgba = Image.new("RGBA", (40, 30), (200, 80, 40, 255))
    alpha = Image.new("L", (40, 30), 0)
    alpha.paste(255, (10, 5, 30, 25))
    rgba.putalpha(alpha)
    src = tmp_path / "logo.png"
    rgba.save(src)
    result = impasto.stylize(src, style, size=40, iterations=3, seed=0)
    out = tmp_path / "styled.png"
    result.save(out)
    saved = Image.open(out)
    assert saved.mode == "RGBA"
    a = np.asarray(saved)[..., 3]
    assert a[0, 0] == 0 and a[15, 20] == 255
