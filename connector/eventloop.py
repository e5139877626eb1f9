"""Which event loop runs the connector: uvloop, unless the environment asks for asyncio's.

uvloop spends about a third less CPU per CDP request than the stock loop on this
workload (docs/benchmarks.md). ``CDP_CONNECTOR_EVENT_LOOP=asyncio`` selects the
stock loop (to compare, or on a platform without uvloop).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

ENV = "CDP_CONNECTOR_EVENT_LOOP"


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on the chosen loop (like ``asyncio.run``)."""
    if os.environ.get(ENV, "uvloop") == "asyncio":
        return asyncio.run(main)
    import uvloop  # imported here so that choosing asyncio never needs it

    return uvloop.run(main)
