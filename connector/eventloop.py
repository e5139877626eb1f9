"""How the connector's process runs: uvloop (unless asked otherwise) and a tuned cyclic GC.

uvloop spends about a third less CPU per CDP request than the stock loop on this
workload (docs/benchmarks.md). ``CDP_CONNECTOR_EVENT_LOOP=asyncio`` selects the
stock loop (to compare, or on a platform without uvloop).
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run_loop", "tune_gc"]

T = TypeVar("T")

ENV = "CDP_CONNECTOR_EVENT_LOOP"
GC_ENV = "CDP_CONNECTOR_GC"
# Young collections every 50k net allocations instead of 700: each record makes a few
# dozen short-lived dicts/lists, and with the stock threshold the collector ran every
# ~20 records. Memory stays bounded by max_buffered_records either way.
GC_THRESHOLD = (50_000, 20, 100)


def tune_gc() -> None:
    """Freeze what start-up built (modules, models, compiled rules) out of the collector's
    scans and collect young objects less often. ``CDP_CONNECTOR_GC=default`` skips it."""
    if os.environ.get(GC_ENV) == "default":
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on the chosen loop (like ``asyncio.run``)."""
    if os.environ.get(ENV, "uvloop") == "asyncio":
        return asyncio.run(main)
    import uvloop  # imported here so that choosing asyncio never needs it

    return uvloop.run(main)
