"""The benchmark scripts still run (tiny sizes on the CPU): they are not tests, but
they must not rot between the sessions that have the hardware to run them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
pytestmark = pytest.mark.slow


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=600, check=False
    )


def test_gpu_check_dry_run_writes_its_report(tmp_path: Path) -> None:
    skip = "paper-bf16-compile,default-2048,paper-2048,paper-2048-nchw,paper-fp16"
    done = run_script(
        str(BENCHMARKS / "gpu.py"), "--dry-run", "--out", str(tmp_path), "--skip", skip
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "gpu.json").read_text())
    checks = {r.get("check") or r.get("run"): r for r in report["results"]}
    # The compact L-BFGS direction agrees with the two-loop recursion it replaced.
    assert checks["lbfgs_direction"]["relative_difference"] < 1e-5
    assert checks["paper-bf16"]["iterations"] == 3
    assert "| paper-fp32 |" in (tmp_path / "gpu.md").read_text()


def test_starts_comparison_reports_every_strategy(tmp_path: Path) -> None:
    out = tmp_path / "starts.json"
    done = run_script(
        str(BENCHMARKS / "starts.py"),
        *("--size", "64", "--iterations", "3", "--coarse", "2", "--device", "cpu"),
        *("--target", "1e12", "--out", str(out)),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {r["start"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"photo", "matched", "coarse-2", "residual-2", "noise"}
    # Every start is below a target of 1e12 at once; the coarse ones after their cost.
    assert rows["photo"]["units_to_target"] == 1
    assert rows["coarse-2"]["units_to_target"] == pytest.approx(2 * 0.27 + 1)


def test_optimizer_comparison_matches_impasto_and_runs_every_variant(tmp_path: Path) -> None:
    out = tmp_path / "optimizers.json"
    variants = ("m50", "twoloop", "diag", "color", "lowpass3x1", "lr1.2")
    done = run_script(
        str(BENCHMARKS / "optimizers.py"),
        *("--size", "48", "--iterations", "6", "--reference-iterations", "6"),
        *("--device", "cpu", "--precision", "fp32", "--out", str(out)),
        *("--variants", *variants),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    rows = {r["variant"]: r for r in report["rows"]}
    assert tuple(rows) == variants
    # With the identity as initial matrix the script's two-loop recursion is
    # impasto's L-BFGS: the same losses, step for step, to rounding (which L-BFGS
    # amplifies over more steps).
    assert rows["twoloop"]["final"] == pytest.approx(rows["m50"]["final"], rel=1e-4)
    assert all(r["final"] < 0.9 * r["first"] for r in rows.values()), rows


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
def test_a_runs_peak_memory_is_its_own_not_the_parents() -> None:
    # Linux carries a parent's peak resident memory over into its child's ru_maxrss
    # at exec; the benchmark's runs (children of its script) must report their own.
    ballast = bytearray(1000 << 20)
    ballast[::4096] = b"\1" * len(ballast[::4096])  # touch every page
    code = (
        "import resource, torch; from impasto.devices import peak_memory_bytes; "
        "inherited = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10; "
        "print(peak_memory_bytes(torch.device('cpu')) >> 20, inherited)"
    )
    done = run_script("-c", code)
    del ballast
    own, inherited = map(int, done.stdout.split())
    assert inherited >= 1000  # what ru_maxrss would have reported
    assert 0 < own < 400  # Python and torch alone (about 220 MiB)
