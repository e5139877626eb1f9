"""Dispatch: post mapped events concurrently, in order per lane, with retries.

Records arrive from the consumer thread in batches (``submit``). Each record goes
to a *lane* (its guest key, its partition, or itself, by ``delivery.ordering``);
a lane's records are posted one after another in offset order, different lanes
concurrently. A fixed pool of ``max_in_flight`` workers takes lanes from a ready
queue, so at most that many requests are in flight and no task is created per
record. A record is finished when all its events are delivered, or it is
dead-lettered (permanent answer, retries exhausted); only then is its offset
released to the tracker.

Failures that are not about one record never spend a record's retries: while the
circuit is open or delivery is halted (401/403), workers wait at the gate.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Protocol

from connector.cdp.client import Answer, Outcome
from connector.config import DeliverySettings
from connector.mapping import MappedEvent
from connector.offsets import OffsetTracker, TopicPartition
from connector.records import Failure, Work
from connector.records import lane_for as lane_for  # re-exported: test_dispatch imports it here
from connector.retry import Backoff, CircuitBreaker, RateLimiter
from connector.state import RunState

log = logging.getLogger(__name__)


class Sender(Protocol):
    async def send(self, body: bytes) -> Answer: ...


class DeadLetterSink(Protocol):
    def publish_work(self, work: Work, failure: Failure, on_done: Callable[[], None]) -> None: ...


class DispatchObserver(Protocol):
    """What metrics want to hear about; a no-op default keeps dispatch free of them."""

    def answered(self, event_type: str, answer: Answer, seconds: float) -> None: ...
    def event_done(self, event_type: str, outcome: str) -> None: ...
    def record_delivered(self) -> None: ...


class _NoObserver:
    def answered(self, event_type: str, answer: Answer, seconds: float) -> None:
        pass

    def event_done(self, event_type: str, outcome: str) -> None:
        pass

    def record_delivered(self) -> None:
        pass


class Dispatcher:
    """Owns the lanes and the worker pool on the event loop."""

    def __init__(
        self,
        sender: Sender,
        deadletter: DeadLetterSink,
        tracker: OffsetTracker,
        settings: DeliverySettings,
        state: RunState,
        observer: DispatchObserver | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._sender = sender
        self._deadletter = deadletter
        self._tracker = tracker
        self._settings = settings
        self._state = state
        self._observer = observer or _NoObserver()
        self._sleep = sleep
        self._halt_on_exhaustion = settings.on_retries_exhausted == "halt"
        retry = settings.retry
        self._backoff = Backoff(retry.initial_backoff_seconds, retry.max_backoff_seconds)
        circuit = settings.circuit
        self.breaker = CircuitBreaker(
            circuit.failure_threshold, circuit.open_seconds, circuit.max_open_seconds
        )
        self._limiter = (
            RateLimiter(settings.rate_limit_per_second) if settings.rate_limit_per_second else None
        )
        self._lanes: dict[Hashable, deque[Work]] = {}
        self._ready: asyncio.Queue[Hashable] = asyncio.Queue()
        self._in_flight: dict[TopicPartition, int] = {}
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._workers: list[asyncio.Task[None]] = []
        self.requests_in_flight = 0

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._worker(), name=f"dispatch-{i}")
            for i in range(self._settings.max_in_flight)
        ]

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    # -- input from the consumer thread (via call_soon_threadsafe) ---------------

    def submit(self, works: list[Work]) -> None:
        for work in works:
            lane = self._lanes.get(work.lane)
            if lane is None:
                self._lanes[work.lane] = deque((work,))
                self._ready.put_nowait(work.lane)
            else:
                lane.append(work)

    async def release_partitions(self, tps: set[TopicPartition]) -> None:
        """On revoke: drop the partitions' queued records, wait for their in-flight ones.

        The caller bounds the wait (``asyncio.wait_for``)."""
        for lane in self._lanes.values():
            if any(w.tp in tps for w in lane):
                kept = [w for w in lane if w.tp not in tps]
                lane.clear()
                lane.extend(kept)
        # In-flight counts change at many awaits; polling them is the simple, cheap way.
        while any(self._in_flight.get(tp, 0) for tp in tps):  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    @property
    def queued(self) -> int:
        return sum(len(lane) for lane in self._lanes.values())

    # -- workers ------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            key = await self._ready.get()
            lane = self._lanes.get(key)
            if not lane:
                self._lanes.pop(key, None)
                continue
            work = lane.popleft()
            try:
                await self._process(work)
            except Exception as exc:
                # A bug, not an answer: stop the connector rather than lose a worker
                # silently; the record has no outcome, so its offset is never committed.
                log.exception("dispatch failed on %s[%d]@%d", *work.tp, work.offset)
                self._state.fail(f"dispatch failed: {exc!r}")
                raise
            if lane:
                self._ready.put_nowait(key)
            else:
                del self._lanes[key]

    async def _process(self, work: Work) -> None:
        if self._tracker.epoch(work.tp) != work.epoch:
            return  # partition revoked since it was read: the new owner reads it again
        self._in_flight[work.tp] = self._in_flight.get(work.tp, 0) + 1
        try:
            for event in work.events:
                failure = await self._deliver(event)
                if failure is None:
                    self._observer.event_done(event.event_type, "delivered")
                    continue
                if failure.exception == "RetriesExhausted" and self._halt_on_exhaustion:
                    self._resumed.clear()
                    self._state.halt(f"{failure.reason} (on_retries_exhausted: halt)")
                    await self._resumed.wait()  # until an operator restarts the connector
                self._observer.event_done(event.event_type, "dead_lettered")
                self._deadletter.publish_work(work, failure, self._finisher(work))
                return
            self._tracker.finish(work.tp, work.offset, work.epoch)
            self._observer.record_delivered()
        finally:
            self._in_flight[work.tp] -= 1

    def _finisher(self, work: Work) -> Callable[[], None]:
        return lambda: self._tracker.finish(work.tp, work.offset, work.epoch)

    async def _gate(self) -> None:
        """Wait while halted or the circuit is open; then take a rate-limit token."""
        while True:
            if not self._resumed.is_set():
                await self._resumed.wait()
                continue
            wait = self.breaker.wait_time()
            self._state.circuit_open = not self.breaker.closed
            if wait <= 0:
                break
            await self._sleep(min(wait, 1.0))
        if self._limiter is not None and (delay := self._limiter.delay()) > 0:
            await self._sleep(delay)

    async def _post(self, event: MappedEvent) -> Answer:
        started = time.monotonic()
        self.requests_in_flight += 1
        try:
            answer = await self._sender.send(event.body)
        finally:
            self.requests_in_flight -= 1
        self._observer.answered(event.event_type, answer, time.monotonic() - started)
        return answer

    async def _deliver(self, event: MappedEvent) -> Failure | None:
        """Post one event until delivered; a Failure when it must be dead-lettered."""
        retry = self._settings.retry
        attempts = 0
        waited = 0.0
        while True:
            await self._gate()
            counted = self.breaker.closed  # failures during an outage spend no retries
            answer = await self._post(event)
            if answer.outcome is Outcome.FATAL:
                if not self._resumed.is_set():
                    continue  # another worker is already probing; wait at the gate
                answer = await self._probe_until_accepted(event, answer)
            if answer.outcome is Outcome.DELIVERED:
                self._on_success()
                return None
            if answer.outcome is Outcome.PERMANENT:
                self._on_success()  # the service is up; this event is the problem
                return Failure(answer.reason, event.rule, answer.status, attempts + 1)
            self.breaker.record_failure()
            self._state.circuit_open = not self.breaker.closed
            self._observer.event_done(event.event_type, "retried")
            if counted:
                attempts += 1
                if attempts >= retry.max_attempts or waited >= retry.max_elapsed_seconds:
                    return Failure(
                        f"retries exhausted after {attempts} attempts: {answer.reason}",
                        event.rule,
                        answer.status,
                        attempts,
                        exception="RetriesExhausted",
                    )
            delay = self._backoff.delay(max(attempts, 1), answer.retry_after)
            waited += delay
            await self._sleep(delay)

    def _on_success(self) -> None:
        self.breaker.record_success()
        self._state.circuit_open = False

    async def _probe_until_accepted(self, event: MappedEvent, answer: Answer) -> Answer:
        """401/403: halt every worker; this one re-sends its own event slowly until the
        credentials are accepted, then lets everyone go. Nothing is dead-lettered."""
        self._resumed.clear()
        self._state.halt(
            f"CDP refused the credentials (HTTP {answer.status}: {answer.reason}); fix the "
            f"client key / API token; re-trying every {self._settings.auth_probe_seconds:g}s"
        )
        while answer.outcome is Outcome.FATAL:
            await self._sleep(self._settings.auth_probe_seconds)
            answer = await self._post(event)
        self._state.resume()
        self._resumed.set()
        return answer
