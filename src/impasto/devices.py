"""Devices, precision, CPU threads and memory: what the machine can do."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from .errors import SettingsError


def mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def resolve_device(spec: str) -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise SettingsError(
            f"--device: unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SettingsError("--device: CUDA was asked for but this PyTorch sees no CUDA GPU")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SettingsError(
                f"--device: {spec} does not exist ({torch.cuda.device_count()} GPU(s))"
            )
    elif device.type == "mps":
        if not mps_available():
            raise SettingsError("--device: MPS was asked for but is not available here")
    elif device.type != "cpu":
        raise SettingsError(f"--device: unsupported device {spec!r}")
    return device


def resolve_precision(spec: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for the network, or None for plain float32.

    Only CUDA gets reduced precision: CPU autocast is slower than float32 on most
    CPUs, and MPS autocast support varies between PyTorch releases.
    """
    if device.type != "cuda" or spec == "fp32":
        if spec in ("bf16", "fp16") and device.type != "cuda":
            raise SettingsError(f"--precision {spec} needs a CUDA device (this run uses {device})")
        return None
    if spec == "bf16" or (spec == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    if dtype is None:
        yield
    else:
        with torch.autocast(device.type, dtype=dtype):
            yield


def float32_bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b outside autocast, which would otherwise run it in half precision again.

    Gram matrices sum over every pixel: in bf16 their 8-bit mantissa loses the
    small differences between the image's and the style's statistics.
    """
    with torch.autocast(a.device.type, enabled=False):
        return torch.bmm(a, b)


def physical_cores() -> int:
    """Physical cores this process may use; hyper-threads slow convolutions down."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        allowed = os.cpu_count() or 1
    cores: set[tuple[str, str]] = set()
    try:
        physical = core = ""
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    physical = value.strip()
                elif key == "core id":
                    core = value.strip()
                    cores.add((physical, core))
    except OSError:
        pass
    return max(1, min(allowed, len(cores) or allowed))


def configure_threads(threads: int) -> None:
    """Use ``threads`` CPU threads (0 = physical cores) unless the user set OMP_NUM_THREADS."""
    if threads:
        torch.set_num_threads(threads)
    elif "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(physical_cores())


def peak_memory_bytes(device: torch.device) -> int:
    """Peak GPU memory on CUDA; peak resident memory of the process elsewhere."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    except (ImportError, OSError):  # Windows has no resource module
        return 0


def available_memory_bytes(device: torch.device) -> int | None:
    """Memory free for a run on ``device``; None when it cannot be told."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
    return None


# Peak resident memory of an L-BFGS run on the CPU, measured with benchmarks/bench.py:
# 858 MiB at 256x192 and 1625 MiB at 512x384, i.e. about 5.5 kB per pixel (features
# kept for backward, plus L-BFGS's 100 pairs of history vectors) over ~600 MiB.
BYTES_PER_PIXEL = 5600
FIXED_BYTES = 600 * 1024**2


def estimate_memory_bytes(height: int, width: int, dtype: torch.dtype | None = None) -> int:
    per_pixel = (
        BYTES_PER_PIXEL // 2 if dtype in (torch.float16, torch.bfloat16) else BYTES_PER_PIXEL
    )
    return FIXED_BYTES + per_pixel * height * width


def largest_size_that_fits(height: int, width: int, free: int, dtype: torch.dtype | None) -> int:
    """The long side (in pixels) of the largest image of this shape that fits in ``free``."""
    per_pixel = estimate_memory_bytes(height, width, dtype) - FIXED_BYTES
    fraction = max(0.0, (free - FIXED_BYTES) / max(per_pixel, 1)) ** 0.5
    return int(max(height, width) * min(fraction, 1.0)) // 16 * 16
