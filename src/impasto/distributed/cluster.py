"""Joining a Ray cluster, and what one run claims from it.

Ray is an optional dependency (the ``ray`` extra), imported only here and only when a
command asks for it, so impasto works without it.
"""

from __future__ import annotations

import io
import logging
import os
import socket
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from PIL import Image

from ..errors import ImpastoError

MISSING_EXTRA = "running on Ray needs the 'ray' extra: pip install 'impasto[ray]'"

# Retries of a task whose worker process died (killed, out of memory, node lost). A
# task that fails by itself (a bad input) is not retried: it would fail again.
MAX_RETRIES = 3


def import_ray() -> ModuleType:
    """The ``ray`` module, or an ImpastoError naming the extra that provides it."""
    try:
        import ray
    except ImportError:
        raise ImpastoError(MISSING_EXTRA) from None
    return ray


@dataclass
class Connection:
    """A driver's link to a cluster; :meth:`close` disconnects only what :func:`connect` opened."""

    ray: ModuleType
    address: str
    opened: bool

    def close(self) -> None:
        if self.opened and self.ray.is_initialized():
            self.ray.shutdown()


def connect(address: str | None = None) -> Connection:
    """Join the cluster at ``address``; without one, ``RAY_ADDRESS`` or a new local instance.

    A local instance serves this machine alone, so it listens on the loopback
    address only (as Ray does on macOS and Windows); set
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1`` to have it listen on the network.
    """
    local = address is None and not os.environ.get("RAY_ADDRESS")
    if local:
        # Read by Ray when it is imported: it must be set first.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = import_ray()
    if ray.is_initialized():
        return Connection(ray, _address(ray), opened=False)
    where = address or os.environ.get("RAY_ADDRESS") or "local"
    if not local:
        _check_reachable(where)
    options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    try:
        if local:
            # "local", not None: Ray would otherwise join the last cluster started on
            # this machine, even one that has since stopped.
            ray.init(address="local", include_dashboard=False, **options)
        else:
            ray.init(address=address, **options)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as e:
        raise ImpastoError(
            f"cannot join the Ray cluster at {where}: {' '.join(str(e).split())}"
        ) from None
    return Connection(ray, _address(ray), opened=True)


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail at once, rather than after Ray's minutes of retries, where nothing listens."""
    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return  # "auto", a Ray Client address: left to Ray
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise ImpastoError(
            f"cannot reach the Ray cluster at {address}: {e.strerror or e} "
            "(is `ray start --head` running there?)"
        ) from None


def _address(ray: ModuleType) -> str:
    try:
        return str(ray.get_runtime_context().gcs_address)
    except Exception:  # an older Ray without it: the address is only reported
        return "ray"


@dataclass(frozen=True)
class TaskResources:
    """What one run claims: CPUs, GPUs (fractions share a GPU), and its CPU threads."""

    num_cpus: float
    num_gpus: float
    slots: int = 1  # how many such tasks the cluster's alive nodes can run at once

    @property
    def threads(self) -> int:
        """CPU threads of a run on the CPU: the CPUs it claimed, at least one."""
        return max(1, int(self.num_cpus)) if not self.num_gpus else 0


def task_resources(
    ray: ModuleType, cpus: float | None = None, gpus: float | None = None
) -> TaskResources:
    """One GPU (and one CPU) per run where the cluster has GPUs; else, by default, all CPUs
    of its smallest node, as a run on one machine uses all its cores."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    total_gpus = sum(n.get("GPU", 0) for n in nodes)
    if gpus is None:
        gpus = 1.0 if total_gpus else 0.0
    if cpus is None:
        node_cpus = [n.get("CPU", 0) for n in nodes if n.get("CPU", 0) > 0]
        cpus = 1.0 if gpus else float(min(node_cpus, default=1))
    if cpus <= 0 and gpus <= 0:
        raise ImpastoError("each Ray task must claim some CPUs or GPUs")
    if gpus > total_gpus:
        raise ImpastoError(f"a task claims {gpus:g} GPU but the Ray cluster has {total_gpus:g}")
    fit = sum(_fits(n, cpus, gpus) for n in nodes)
    if fit == 0:
        raise ImpastoError(
            f"no node of the Ray cluster has {cpus:g} CPUs"
            + (f" and {gpus:g} GPUs" if gpus else "")
            + " for one task; claim fewer"
        )
    return TaskResources(cpus, gpus, fit)


def _fits(node: dict[str, float], cpus: float, gpus: float) -> int:
    by_cpu = int(node.get("CPU", 0) // cpus) if cpus > 0 else 10**6
    by_gpu = int(round(node.get("GPU", 0) / gpus, 6)) if gpus > 0 else 10**6
    return min(by_cpu, by_gpu)


# Images travel between the driver and the tasks as PNG bytes in Ray's object store.
def png_bytes(img: Image.Image) -> bytes:
    """``img`` as PNG, compressed little: it only crosses the object store."""
    out = io.BytesIO()
    img.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def png_image(data: bytes) -> Image.Image:
    """The image of :func:`png_bytes`, decoded at once."""
    img = Image.open(io.BytesIO(data))
    img.load()
    return img
