"""The command line's account of a run: why it stopped, in StopReason's words, and its exit status.

A fake stylizer stands in for the engine, so these run in milliseconds.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image

from impasto import cli
from impasto.results import StopReason
from impasto.settings import Settings, flag


class FakeResult:
    def __init__(self, stopped: str, iterations: int, detail: str | None):
        self.stopped = stopped
        self.stop_detail = detail
        self.iterations = iterations
        self.losses = {"content": 1.0, "style": 2.0, "tv": 0.5, "total": 3.5}
        self.seconds = 0.25

    def save(self, path: str | Path, *, overwrite: bool = False) -> None:
        Image.new("RGB", (4, 4)).save(path)

    def report(self) -> dict[str, Any]:
        return {"stopped": self.stopped, "iterations": self.iterations}


class FakeStylizer:
    """Runs three iterations at 64 px, then stops for ``stops`` (a StopReason's value)."""

    def __init__(self, stops: str, detail: str | None = None):
        self.settings = Settings(seed=0, print_every=1)
        self.device = "cpu"
        self.machine = SimpleNamespace(precision="bf16")
        self.sizes = [64]
        self.scale = 0
        self.iteration = 0
        self.stops = stops
        self.detail = detail

    def planned_iterations(self) -> int:
        return 3

    def run(self) -> Iterator[Any]:
        for i in range(1, 4):
            self.iteration = i
            yield SimpleNamespace(
                iteration=i, iterations=3, size=(64, 48), losses={"total": 3.5}, eta=0.0
            )

    def request_stop(self) -> None:
        pass

    def result(self, stopped: StopReason | None = None) -> FakeResult:
        return FakeResult(stopped or self.stops, self.iteration, self.detail)


def drive(tmp_path: Path, stylizer: FakeStylizer, capsys: pytest.CaptureFixture[str]) -> tuple:
    args = argparse.Namespace(quiet=False, report=str(tmp_path / "report.json"))
    code = cli._drive(args, stylizer, tmp_path / "out.png")
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("stops", "detail"), [("nan", None), ("oom", "at 64 px: CUDA out of memory")]
)
def test_a_failed_run_says_why_in_the_stop_reasons_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stops: str, detail: str | None
) -> None:
    code, err = drive(tmp_path, FakeStylizer(stops, detail), capsys)
    assert code == 1
    why = StopReason(stops).message(3, detail, name=flag)
    last = err.strip().splitlines()[-1]
    assert last == f"impasto: {why}; saved the best image so far to {tmp_path / 'out.png'}"
    assert ("--learning-rate" if stops == "nan" else "--size") in last
    assert (tmp_path / "out.png").is_file()
    assert json.loads((tmp_path / "report.json").read_text())["stopped"] == stops


@pytest.mark.parametrize("stops", ["done", "converged"])
def test_a_finished_run_says_how_it_ended(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stops: str
) -> None:
    code, err = drive(tmp_path, FakeStylizer(stops), capsys)
    assert code == 0
    assert err.startswith("impasto: lbfgs on cpu in bf16, ")  # the precision that runs
    assert "iteration 3/3 at 64x48: total 3.5" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"impasto: wrote {tmp_path / 'out.png'} in 0.2 s, total loss 3.5; ")
    assert last.endswith(StopReason(stops).message(3, name=flag))


class InterruptedStylizer(FakeStylizer):
    def run(self) -> Iterator[Any]:
        yield from itertools.islice(super().run(), 2)
        raise KeyboardInterrupt  # what a second Ctrl-C raises in the middle of an iteration


def test_an_interrupted_run_saves_its_state_and_says_how_to_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    from impasto.run import state

    saved: list[Path] = []
    monkeypatch.setattr(state, "save_state", lambda stylizer, path, extra: saved.append(path))
    handler = signal.getsignal(signal.SIGINT)
    code, err = drive(tmp_path, InterruptedStylizer("done"), capsys)
    assert code == cli.EXIT_INTERRUPTED
    assert saved == [tmp_path / "out.png.state.pt"]
    assert err.strip().splitlines()[-1] == (
        f"impasto: {StopReason.INTERRUPTED.message(2)}; saved the best image so far to "
        f"{tmp_path / 'out.png'}; continue with: impasto resume {saved[0]}"
    )
    assert signal.getsignal(signal.SIGINT) is handler
