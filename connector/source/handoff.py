"""Handoff: the consumer thread's way to the dispatcher on the event loop.

The source thread never touches the dispatcher directly: records go over with
``call_soon_threadsafe``, and a release (revoke, shutdown, fenced) runs on the loop
while the thread waits for it, bounded, polling its consumer meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future

from connector.delivery.dispatcher import Dispatcher
from connector.delivery.flow import Flow
from connector.offsets.tracker import TopicPartition
from connector.records import Work

__all__ = ["Handoff"]

log = logging.getLogger(__name__)


class Handoff:
    """The consumer thread's way to the dispatcher on the event loop."""

    def __init__(
        self, dispatcher: Dispatcher, loop: asyncio.AbstractEventLoop, flow: Flow | None = None
    ) -> None:
        self._dispatcher = dispatcher
        self._loop = loop
        self._flow = flow  # the dispatcher's (``Dispatcher.flow``); None: no pacing

    def submit(self, works: list[Work]) -> None:
        """Queue records for the dispatcher from the consumer thread; returns at once
        (``Dispatcher.submit`` runs on the loop)."""
        if self._flow is not None:
            self._flow.handed(len(works))  # waiting from now on, on its way included
        self._loop.call_soon_threadsafe(self._dispatcher.submit, works)

    def wait_for_room(self, timeout: float) -> bool:
        """Until the dispatcher wants more records (``connector.delivery.flow``), at most
        ``timeout`` s; True when it does."""
        return True if self._flow is None else self._flow.wait_for_room(timeout)

    def release(
        self,
        tps: set[TopicPartition],
        timeout: float,
        poll: Callable[[], bool] | None = None,
    ) -> bool:
        """No request starts any more for the partitions' records (applied before this
        waits at all); then wait up to ``timeout`` for their requests in flight. True
        when none is left open.

        ``poll`` runs every 50 ms while waiting (the shutdown polls the consumer);
        when it returns True the wait ends at once."""
        future = asyncio.run_coroutine_threadsafe(self._release(tps, timeout), self._loop)
        deadline = time.monotonic() + timeout + 1.0
        while True:
            wait = 0.05 if poll is not None else deadline - time.monotonic()
            try:
                return future.result(max(0.0, wait))
            except TimeoutError:
                if (poll is not None and poll()) or time.monotonic() >= deadline:
                    future.cancel()
                    return False

    async def _release(self, tps: set[TopicPartition], wait: float) -> bool:
        self._dispatcher.release(tps)
        if not self._dispatcher.in_flight(tps):
            return True
        try:
            async with asyncio.timeout(wait):
                await self._dispatcher.wait_in_flight(tps)
        except TimeoutError:
            return False
        return True

    def stop(self, timeout: float) -> None:
        """Cancel every request still open (the dispatcher stops), so the CDP does not
        count them after this process committed and left."""
        future: Future[None] = asyncio.run_coroutine_threadsafe(self._dispatcher.stop(), self._loop)
        try:
            future.result(timeout)
        except TimeoutError:
            log.warning("dispatch did not stop within %.1fs", timeout)
