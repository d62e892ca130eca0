"""Running impasto on a Ray cluster: batch items, and web jobs, as Ray tasks.

Importing this package does not import Ray (the ``ray`` extra); the modules that
need it import it when they are used, with an error naming the extra if it is missing.

- :mod:`.cluster`: joining a cluster (:func:`connect`) and what a task claims.
- :mod:`.batch`: :class:`RayExecutor`, the executor ``impasto batch --ray`` uses.
- :mod:`.jobs`: :func:`ray_engine`, one web job as a Ray task with progress flowing back.
- :mod:`.video`: a video painted in chunks of frames as Ray tasks (``impasto video --ray``).
"""

from __future__ import annotations

from .cluster import MISSING_EXTRA, Connection, TaskResources, connect, import_ray, task_resources

__all__ = [
    "MISSING_EXTRA",
    "Connection",
    "TaskResources",
    "connect",
    "import_ray",
    "task_resources",
]
