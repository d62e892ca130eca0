"""Device and precision choice: what runs where, and what the run reports."""

from __future__ import annotations

import pytest
import torch

from impasto import devices
from impasto.devices import Machine
from impasto.errors import SettingsError


def test_explicit_precisions_on_the_cpu() -> None:
    cpu = torch.device("cpu")
    assert devices.resolve_precision("fp32", cpu) is None
    assert devices.resolve_precision("bf16", cpu) is torch.bfloat16
    with pytest.raises(SettingsError, match="fp16 needs a CUDA device"):
        devices.resolve_precision("fp16", cpu)


@pytest.mark.parametrize(
    ("support", "faster", "expected"),
    [
        ("amx", False, torch.bfloat16),
        ("avx512_bf16", True, torch.bfloat16),
        ("avx512_bf16", False, None),
        (None, True, None),
    ],
)
def test_auto_precision_on_the_cpu_follows_the_bf16_hardware(
    monkeypatch: pytest.MonkeyPatch, support: str | None, faster: bool, expected: torch.dtype | None
) -> None:
    monkeypatch.setattr(devices, "cpu_bf16_support", lambda: support)
    monkeypatch.setattr(devices, "_bf16_convolution_is_faster", lambda: faster)
    assert devices.resolve_precision("auto", torch.device("cpu")) is expected


def test_bf16_support_is_read_from_the_cpu_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(devices, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    assert devices.cpu_bf16_support() == "avx512_bf16"
    monkeypatch.setattr(devices, "cpu_flags", lambda: {"avx2", "amx_tile", "amx_bf16"})
    assert devices.cpu_bf16_support() == "amx"
    monkeypatch.setattr(devices, "cpu_flags", lambda: {"avx2", "fma"})
    assert devices.cpu_bf16_support() is None


def test_the_machine_names_the_precision_that_runs() -> None:
    assert Machine.resolve("cpu", "fp32").precision == "fp32"
    bf16 = Machine.resolve("cpu", "bf16")
    assert bf16.precision == "bf16"
    # The CPU runs a bf16 network directly; autocast is for GPUs.
    assert bf16.autocast_dtype is None
    assert Machine(torch.device("cuda"), torch.float16).autocast_dtype is torch.float16


def test_unknown_and_missing_devices_are_refused() -> None:
    with pytest.raises(SettingsError, match="unknown device 'gpu7'"):
        devices.resolve_device("gpu7")
    if not torch.cuda.is_available():
        with pytest.raises(SettingsError, match="sees no CUDA GPU"):
            devices.resolve_device("cuda")
    assert devices.resolve_device("cpu") == torch.device("cpu")


def test_a_size_beyond_free_memory_is_refused_with_one_that_fits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(devices, "available_memory_bytes", lambda device: 2 * 1024**3)
    machine = Machine(torch.device("cpu"), None)
    machine.check_fits(512, 384)  # about 1.7 GB
    with pytest.raises(Exception, match=r"a 4096x3072 image needs about 71\.1 GB"):
        machine.check_fits(4096, 3072)


def test_the_result_reports_the_precision_that_ran(examples) -> None:
    import impasto

    result = impasto.stylize(*examples, size=32, iterations=1, precision="fp32", device="cpu")
    assert result.precision == "fp32" and result.report()["precision"] == "fp32"
    result = impasto.stylize(*examples, size=32, iterations=1, precision="bf16", device="cpu")
    assert result.precision == "bf16"
