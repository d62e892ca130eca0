"""Devices, precision, CPU threads and memory: what the machine can do."""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from .errors import ImpastoError, SettingsError


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


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux reports them (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def cpu_bf16_support() -> str | None:
    """How this CPU multiplies bf16: ``amx`` (matrix tiles), ``avx512_bf16`` (dot-product
    instructions, e.g. AMD Zen 4, Intel Cooper Lake) or None (emulated)."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        if probe and probe():
            return "amx"
    except RuntimeError:
        pass
    flags = cpu_flags()
    if "amx_bf16" in flags:
        return "amx"
    return "avx512_bf16" if "avx512_bf16" in flags else None


_BF16_FASTER: dict[str, bool] = {}


def _bf16_convolution_is_faster() -> bool:
    """Time one of VGG19's middle convolutions in float32 and in bf16 (once per process).

    With dot-product instructions but no matrix tiles, whether oneDNN's bf16 kernels
    beat float32 depends on the CPU and the build, so it is measured, not assumed.
    """
    if "cpu" not in _BF16_FASTER:
        import time

        conv = torch.nn.Conv2d(128, 128, 3, padding=1).to(memory_format=torch.channels_last)
        x = torch.randn(1, 128, 96, 96).contiguous(memory_format=torch.channels_last)
        seconds = {}
        with torch.no_grad():
            for dtype in (torch.float32, torch.bfloat16, torch.float32, torch.bfloat16):
                c, xi = conv.to(dtype), x.to(dtype)
                c(xi)  # the first call picks kernels
                t = time.perf_counter()
                for _ in range(3):
                    c(xi)
                seconds[dtype] = min(seconds.get(dtype, 1e9), time.perf_counter() - t)
        _BF16_FASTER["cpu"] = seconds[torch.bfloat16] < 0.9 * seconds[torch.float32]
    return _BF16_FASTER["cpu"]


def cpu_has_fast_bf16() -> bool:
    """True where bf16 convolutions run faster than float32 on this CPU.

    On CPUs with AMX tiles (Intel Xeon since Sapphire Rapids) oneDNN runs them on
    the matrix unit, well ahead of float32 (docs/performance.md); with AVX-512 BF16
    alone it is measured; elsewhere bf16 is emulated and slower.
    """
    support = cpu_bf16_support()
    if support == "amx":
        return True
    return support == "avx512_bf16" and _bf16_convolution_is_faster()


def resolve_precision(spec: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for the network, or None for plain float32.

    ``auto`` is bf16 on CUDA GPUs that support it (else fp16) and on CPUs where bf16
    convolutions are faster (:func:`cpu_has_fast_bf16`; else float32). MPS always runs
    float32: its autocast support varies between PyTorch releases.
    """
    if spec == "fp32":
        return None
    if device.type == "cuda":
        if spec == "bf16" or (spec == "auto" and torch.cuda.is_bf16_supported()):
            return torch.bfloat16
        return torch.float16
    if device.type == "cpu":
        if spec == "fp16":
            raise SettingsError("--precision fp16 needs a CUDA device; on the CPU use bf16")
        if spec == "bf16" or cpu_has_fast_bf16():
            return torch.bfloat16
        return None
    if spec in ("bf16", "fp16"):
        raise SettingsError(f"--precision {spec} is not available on {device}; use fp32")
    return None


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    if dtype is None:
        yield
    else:
        # No cast cache: each weight is cast once per step anyway, and a CUDA graph
        # capture must not hold casts made outside it.
        with torch.autocast(device.type, dtype=dtype, cache_enabled=False):
            yield


PRECISION_NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


@dataclass(frozen=True)
class Machine:
    """Where a run computes and in which precision its network runs."""

    device: torch.device
    dtype: torch.dtype | None  # the network's reduced precision; None = float32

    @classmethod
    def resolve(cls, device: str, precision: str) -> Machine:
        """The machine that the ``device`` and ``precision`` settings name."""
        resolved = resolve_device(device)
        return cls(resolved, resolve_precision(precision, resolved))

    @property
    def precision(self) -> str:
        """The precision that runs: fp32, bf16 or fp16."""
        return PRECISION_NAMES[self.dtype]

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        # The CPU runs a network converted to bf16 (faster than casting every weight
        # at every step); GPUs cast through autocast.
        return self.dtype if self.device.type != "cpu" else None

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        return autocast(self.device, self.autocast_dtype)

    def prepare(self, threads: int) -> None:
        """Process-wide settings for a run: CPU threads and heap, or cuDNN's kernel search."""
        if self.device.type == "cpu":
            configure_threads(threads)
            keep_freed_memory()
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes per scale: pick fastest kernels

    def release(self) -> None:
        """Hand back what :meth:`prepare` kept for the run."""
        if self.device.type == "cpu":
            release_freed_memory()

    def peak_memory_bytes(self) -> int:
        return peak_memory_bytes(self.device)

    def check_fits(self, width: int, height: int) -> None:
        """Refuse, before any heavy work, a size that cannot fit in memory."""
        free = available_memory_bytes(self.device)
        need = estimate_memory_bytes(height, width, self.dtype)
        if free is not None and need > free:
            fits = largest_size_that_fits(height, width, free, self.dtype)
            raise ImpastoError(
                f"a {width}x{height} image needs about {need / 1e9:.1f} GB but only "
                f"{free / 1e9:.1f} GB is free on {self.device}; use --size {fits} or smaller"
            )


def is_out_of_memory(error: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", ())
    return isinstance(error, oom) or (
        isinstance(error, RuntimeError)
        and any(s in str(error) for s in ("out of memory", "can't allocate memory"))
    )


# The CPU features a measurement depends on (DESIGN.md: state which kind a figure is from).
MEASURED_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def machine_facts() -> dict[str, object]:
    """What a measurement was made on: CPU model and the flags that matter, cores, how
    bf16 runs, the GPU if any, torch and Python versions, and the date."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as f:
        model = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    facts: dict[str, object] = {
        "cpu": model,
        "cpu_flags": [f for f in MEASURED_FLAGS if f in cpu_flags()],
        "cores": physical_cores(),
        "bf16": cpu_bf16_support(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }
    if torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name()
    return facts


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


def _libc_function(name: str) -> Callable[..., int] | None:
    """A function of the C library this process uses; None where there is none (Windows)
    or it lacks ``name`` (macOS, musl: no mallopt)."""
    try:
        return getattr(ctypes.CDLL(None), name, None)
    except (OSError, TypeError):
        return None


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> bool:
    """Let glibc reuse freed memory for large tensors instead of returning it at once.

    glibc gives each allocation above its mmap threshold (at most 32 MiB) its own
    mmap() and unmaps it on free. A step at 512 px allocates and frees several
    float32 tensors of 50 MB (the first layer's features and their gradients), so
    every step touched ~290 MB of new pages: on the 2-core CPU 72,000-80,000 page
    faults and 0.13-0.19 s of kernel time per bf16 step (119,000 and 0.28 s in
    float32), and steps took 10-15% longer. With the thresholds raised the same
    memory is reused from step to step (under 100 faults per step over 150 steps;
    peak resident memory within 0.05 GB of what it was). The setting is
    process-wide, like the thread count; :func:`release_freed_memory` hands the
    memory back after a run. Returns whether glibc accepted it.
    """
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    # Older glibc refuses an mmap threshold above 32 MiB: then at least that.
    mmap_ok = any(mallopt(_M_MMAP_THRESHOLD, v) == 1 for v in (1 << 30, 32 << 20))
    return bool(mmap_ok and mallopt(_M_TRIM_THRESHOLD, 1 << 30) == 1)


def release_freed_memory() -> None:
    """Return the C heap's free memory to the system (after a run; glibc only)."""
    trim = _libc_function("malloc_trim")
    if trim is not None:
        trim(0)


def peak_memory_bytes(device: torch.device) -> int:
    """Peak GPU memory on CUDA; peak resident memory of the process elsewhere.

    On Linux the high-water mark of this program's own memory (``VmHWM``), not
    ``ru_maxrss``: Linux carries a parent's peak over into its child's ru_maxrss at
    exec, so a run started from a large process (a benchmark script that had just
    counted FLOPs at 512 px: 920 MiB) would be reported at least that large.
    """
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    try:
        with open("/proc/self/status") as f:
            line = next(x for x in f if x.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024
    except (OSError, StopIteration, ValueError, IndexError):
        pass  # no /proc (macOS, Windows)
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


# Peak resident memory of an L-BFGS run on the CPU, measured with benchmarks/bench.py
# in float32 with 100 pairs of L-BFGS history: 858 MiB at 256x192 and 1625 MiB at
# 512x384, i.e. about 5.5 kB per pixel over ~600 MiB. The defaults (50 pairs; bf16
# on CPUs with AMX) need less (1391 MiB at 512x384), so this errs on the safe side.
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
