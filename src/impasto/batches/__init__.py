"""Painting many images: each content image with each style, or listed pairs.

:func:`batch` is the API (``impasto.batch``) and ``impasto batch`` the command; items
run in this process by default or as Ray tasks (:mod:`impasto.distributed`).
"""

from __future__ import annotations

from .api import batch, plan
from .driver import BatchEvent, BatchRun, LocalExecutor
from .existing import NOT_COMPARED
from .plan import BatchError, BatchItem, output_name
from .report import BatchReport, ItemRecord, ItemStatus

__all__ = [
    "NOT_COMPARED",
    "BatchError",
    "BatchEvent",
    "BatchItem",
    "BatchReport",
    "BatchRun",
    "ItemRecord",
    "ItemStatus",
    "LocalExecutor",
    "batch",
    "output_name",
    "plan",
]
