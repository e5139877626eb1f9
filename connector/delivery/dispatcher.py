"""Dispatch: post mapped events concurrently, in order per lane, with retries.

Records arrive from the consumer thread in batches (``submit``). Each record goes
to a *lane* (its guest key, its partition, or itself, by ``delivery.ordering``);
a lane's records are posted one after another in offset order, different lanes
concurrently. A fixed pool of ``max_in_flight`` workers takes lanes from a ready
heap, so at most that many requests are in flight and no task is created per
record. A record is finished when all its events are delivered, or it is
dead-lettered (permanent answer, retries exhausted); only then is its offset
released to the tracker.

Guarantees:
1. Oldest first. The ready heap is keyed by the arrival number of each lane's head
   record (``Work.seq``), so the lane holding the record that waited longest is served
   next. Within a partition arrival order is offset order, so this serves the record
   holding the partition's commit point back; across partitions it is the age of the
   record in memory, which needs no tracker lookup and, unlike a distance from a
   commit point, does not change while the lane waits in the heap. Round-robin would
   give a busy guest one turn per cycle of all ready lanes and let its partition fall
   behind.
2. One owner at a time. No request starts for a record whose partition was revoked or
   released (``release``): ownership is checked immediately before every
   request, with no await between the check and the request, so it follows every
   back-off sleep and every circuit, halt or rate-limit wait, and precedes each event.
3. ``wait_in_flight`` (after ``release``) waits only for requests actually in flight; records parked
   in back-off or at the gate are dropped when they wake, not waited for.
4. Per-event progress: when a later event of a record fails, its ``Failure`` names the
   events already delivered, for the dead letter; ``Work.delivered`` (from such a dead
   letter, on replay) names events that are not posted again.

Failures that are not about one record never spend a record's retries: while the
circuit is open or delivery is halted (401/403), workers wait at the gate.

Parts, in this package: ``lanes`` (the lane queues and the ready heap), ``gate`` (halts,
circuit, rate limit), ``ownership`` (which partitions are ours, requests in flight).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Protocol

from connector.cdp.client import Answer, Outcome
from connector.config import DeliverySettings
from connector.delivery.flow import Flow
from connector.delivery.gate import Gate
from connector.delivery.lanes import Lanes
from connector.delivery.ownership import Ownership
from connector.delivery.retry import Backoff, CircuitBreaker
from connector.mapping import MappedEvent
from connector.offsets.tracker import OffsetTracker, TopicPartition
from connector.records import DeliveryFailure, Failure, ReadAt, Work
from connector.run_state import RunState

__all__ = ["DeadLetterSink", "DispatchObserver", "Dispatcher", "Sender"]

log = logging.getLogger(__name__)


class _Revoked:
    """The record's partition is no longer ours: drop it without an outcome."""


_REVOKED = _Revoked()


class Sender(Protocol):
    """What the workers post through: the CDP client, or the browser-id resolver in front of it."""

    async def send(self, body: bytes) -> Answer:
        """Post one event body once; a network failure is an ``Answer`` too, not an exception."""
        ...


class DeadLetterSink(Protocol):
    """Where a record the CDP will not take goes (``connector.settle.deadletter``)."""

    def publish_failure(
        self, record: ReadAt, failure: Failure, on_done: Callable[[], None]
    ) -> None:
        """Write the record to the dead-letter topic; ``on_done`` runs once the write is
        acknowledged (it finishes the offset), never when it failed (that stops the run)."""
        ...


class DispatchObserver(Protocol):
    """What metrics want to hear about; a no-op default keeps dispatch free of them."""

    def answered(self, event_type: str, answer: Answer, seconds: float) -> None:
        """Every answer to a request, with its round-trip time."""
        ...

    def event_done(self, event_type: str, outcome: str) -> None:
        """An event was delivered, retried, or dead-lettered (``outcome``)."""
        ...

    def record_delivered(self) -> None:
        """Every event of a record was delivered; its offset is finished."""
        ...

    def event_delivered(self, work: Work) -> None:
        """One event of ``work`` was delivered, right after its answer (its age)."""
        ...


class _NoObserver:
    def answered(self, event_type: str, answer: Answer, seconds: float) -> None:
        pass

    def event_done(self, event_type: str, outcome: str) -> None:
        pass

    def record_delivered(self) -> None:
        pass

    def event_delivered(self, work: Work) -> None:
        pass


class Dispatcher:
    """Owns the lanes (``connector.delivery.lanes``) and the worker pool on the event loop."""

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
        self._gate = Gate(settings, state, sleep)
        # The consumer thread hands over more while fewer than 2 x max_in_flight records
        # wait for a worker: with ordering by key some of them wait behind a lane being
        # posted, and every worker that finishes must still find a ready lane.
        self.flow = Flow(2 * settings.max_in_flight)
        self._lanes = Lanes(self.flow)
        self._own = Ownership(tracker)
        self._workers: list[asyncio.Task[None]] = []
        self.requests_in_flight = 0

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker of the gate (replaceable, for tests with their own clock)."""
        return self._gate.breaker

    @breaker.setter
    def breaker(self, breaker: CircuitBreaker) -> None:
        """Swap in a breaker (a test's, with its own clock); before ``start``."""
        self._gate.breaker = breaker

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        """Start the ``max_in_flight`` workers on the running loop; the pipeline calls it
        once, before the source submits anything."""
        self._workers = [
            asyncio.create_task(self._worker(), name=f"dispatch-{i}")
            for i in range(self._settings.max_in_flight)
        ]

    async def stop(self) -> None:
        """Cancel the workers and wait for them: requests in flight are abandoned without
        an outcome, so their offsets stay uncommitted (called last, after the source's
        drain, or by ``Handoff.stop`` at shutdown)."""
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    # -- input from the consumer thread (via call_soon_threadsafe) ---------------

    def submit(self, works: list[Work]) -> None:
        """Queue a batch of records in offset order; runs on the loop for the consumer
        thread (``connector.source.handoff.Handoff.submit``), never blocks, never fails."""
        self._lanes.submit(works)

    def release(self, tps: set[TopicPartition]) -> None:
        """On revoke, at shutdown or when fenced: from now on no request starts for the
        partitions' records. Queued ones are dropped now, those parked in back-off or at
        the gate when they wake. Requests in flight go on; ``wait_in_flight`` waits for
        them (their answers still count).

        Called on the loop for the consumer thread (``connector.source.handoff.Handoff``), before it
        revokes the partitions in the tracker."""
        self._own.release(tps)
        self._lanes.drop(tps)

    def in_flight(self, tps: set[TopicPartition]) -> int:
        """Requests open for records of these partitions."""
        return self._own.in_flight(tps)

    async def wait_in_flight(self, tps: set[TopicPartition]) -> None:
        """Until no request is open for these partitions; the caller bounds the wait."""
        await self._own.wait_in_flight(tps)

    @property
    def queued(self) -> int:
        """Records waiting in the lanes, not yet taken by a worker."""
        return self._lanes.queued

    # -- workers ------------------------------------------------------------

    async def _worker(self) -> None:
        lanes = self._lanes
        work = None
        while True:
            if work is None:
                work = lanes.take()
                if work is None:
                    await lanes.wait()
                    continue
            try:
                await self._process(work)
            except Exception as exc:
                # A bug, not an answer: stop the connector rather than lose a worker
                # silently; the record has no outcome, so its offset is never committed.
                log.exception("dispatch failed on %s[%d]@%d", *work.tp, work.offset)
                self._state.fail(f"dispatch failed: {exc!r}")
                raise
            work = lanes.done(work)

    async def _process(self, work: Work) -> None:
        events = work.events
        for index, event in enumerate(events):
            if index in work.delivered:
                continue  # delivered before this record was dead-lettered (replay)
            failure = await self._deliver(work, event)
            if failure is None:
                self._observer.event_delivered(work)  # right after the answer: its age
                self._observer.event_done(event.event_type, "delivered")
                continue
            if isinstance(failure, _Revoked):
                return  # the new owner reads the record again
            if failure.exception is DeliveryFailure.RETRIES_EXHAUSTED and self._halt_on_exhaustion:
                self._gate.halt(f"{failure.reason} (on_retries_exhausted: halt)")
                await self._gate.until_resumed()  # until an operator restarts the connector
                if not self._own.owns(work):
                    return
            self._observer.event_done(event.event_type, "dead_lettered")
            if len(events) > 1:  # which of the record's events got through, for replay
                delivered = tuple((i, e.event_type) for i, e in enumerate(events[:index]))
                failure = replace(failure, event=(index, event.event_type), delivered=delivered)
            self._deadletter.publish_failure(work, failure, self._finisher(work))
            return
        self._tracker.finish(work.tp, work.offset, work.epoch)
        self._observer.record_delivered()

    def _finisher(self, work: Work) -> Callable[[], None]:
        return lambda: self._tracker.finish(work.tp, work.offset, work.epoch)

    async def _deliver(self, work: Work, event: MappedEvent) -> Failure | _Revoked | None:
        """Post one event until delivered; a Failure when it must be dead-lettered,
        _REVOKED when its partition stopped being ours before an attempt.

        On 401/403 this worker halts every other one and re-sends its own event every
        ``auth_probe_seconds`` (``probing``) until the credentials are accepted, then
        lets everyone go; nothing is dead-lettered for it. If the event's partition is
        revoked meanwhile, the halt is lifted so that another worker's record probes."""
        retry = self._settings.retry
        gate = self._gate
        tp = work.tp
        own = self._own
        requests = own.requests
        attempts = 0
        waited = 0.0
        probing = False
        while True:
            if probing:
                probe = False
                await self._sleep(self._settings.auth_probe_seconds)
            elif gate.open:
                probe = False  # nothing to wait for: no gate coroutine per attempt
            else:
                probe = await gate.wait()
            # The one-owner check: after every wait above and every back-off below, with
            # no await between it and the request.
            if not own.owns(work):
                if probe:
                    gate.breaker.probe_not_sent()
                if probing:
                    gate.resume()
                return _REVOKED
            counted = gate.breaker.closed  # failures during an outage spend no retries
            started = time.monotonic()
            self.requests_in_flight += 1
            requests[tp] = requests.get(tp, 0) + 1
            try:
                answer = await self._sender.send(event.body)
            finally:
                self.requests_in_flight -= 1
                requests[tp] -= 1
            self._observer.answered(event.event_type, answer, time.monotonic() - started)
            outcome = answer.outcome
            if outcome is Outcome.FATAL:
                if not probing and not gate.halted:
                    probing = True
                    gate.refused(answer, self._settings.auth_probe_seconds)
                continue  # probe again, or another worker is probing: wait at the gate
            if probing:
                probing = False
                gate.resume()
            if outcome is not Outcome.RETRYABLE:
                gate.succeeded()  # the service is up (PERMANENT: the event is the problem)
                if outcome is Outcome.DELIVERED:
                    return None
                return Failure(answer.reason, event.rule, answer.status, attempts + 1)
            gate.failed(answer)
            self._observer.event_done(event.event_type, "retried")
            if counted:
                attempts += 1
                if attempts >= retry.max_attempts or waited >= retry.max_elapsed_seconds:
                    return Failure(
                        f"retries exhausted after {attempts} attempts: {answer.reason}",
                        event.rule,
                        answer.status,
                        attempts,
                        exception=DeliveryFailure.RETRIES_EXHAUSTED,
                    )
            delay = self._backoff.delay(max(attempts, 1), answer.retry_after)
            waited += delay
            await self._sleep(delay)
