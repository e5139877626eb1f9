"""Settle: what becomes of one consumed record — skipped, dead letter, or work for dispatch.

The stage between decode/map and dispatch, the same for ``run`` (the source thread
reads the topics) and ``replay-dlq`` (a reader of the dead-letter topic):

1. ``prepare`` decodes and maps the value (``Preparer``: one decoder per topic,
   built on first use; a tombstone is a decode error);
2. a dependency that is down (``retriable`` errors: the schema registry) is waited
   out with ``Backoff`` instead of dead-lettering good records; the reader's
   ``wait`` says how (``run`` pauses and waits, ``replay-dlq`` gives up at once);
3. the outcome is a value: ``Skipped`` (by which rule), ``DeadLetter`` (with its
   ``Failure``) or ``Work``; ``take`` applies it — a skip is finished at once, a dead
   letter is finished when its write is acknowledged, work goes to dispatch.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connector.config import TopicSettings
from connector.decode.decoders import ConfluentAvroDecoder, SchemalessAvroDecoder, ValueDecoder
from connector.decode.registry import RegistryClient
from connector.decode.schemas import load_schema
from connector.delivery.retry import Backoff
from connector.errors import ConnectorError, RecordError
from connector.mapping import Mapper, MapResult
from connector.mapping.mapper import UnknownPointOfSale
from connector.offsets.tracker import OffsetTracker
from connector.records import ConsumedRecord, Failure, LaneOf, Work
from connector.run_state import RunState
from connector.settle.deadletter import DeadLetterQueue
from connector.settle.record_paths import SchemaWatch

__all__ = [
    "TRANSIENT_BACKOFF",
    "DeadLetter",
    "NotConfigured",
    "Outcome",
    "Prepare",
    "Preparer",
    "Settle",
    "Skipped",
    "UnknownPosLog",
    "Wait",
]

log = logging.getLogger(__name__)

Prepare = Callable[[str, bytes | None], MapResult]
# Sleep ``delay`` seconds before the next attempt; True when the reader stops instead.
Wait = Callable[[float], bool]
# Schema registry down: soon at first, then every few seconds. An attempt is one
# request, and the ceiling is how late consumption resumes after the registry is back.
TRANSIENT_BACKOFF = Backoff(0.5, 5.0)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A rule filtered the record out (``no-match`` when no rule matched)."""

    rule: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """The record cannot be decoded or mapped; it goes to the dead-letter topic."""

    failure: Failure


Outcome = Skipped | DeadLetter | Work


class NotConfigured(RecordError):
    """A replayed dead letter's origin topic is not in this config's topics."""

    stage = "replay"


class UnknownPosLog:
    """Records refused for a point of sale the tenant does not have: each counted, each
    value logged once (at most ``most`` values; the count goes on)."""

    def __init__(self, count: Callable[[], None], source: str, most: int = 100) -> None:
        self._count = count
        self._source = source
        self._most = most
        self._seen: set[str] = set()

    def __call__(self, value: str) -> None:
        self._count()
        if value in self._seen or len(self._seen) > self._most:
            return
        self._seen.add(value)
        if len(self._seen) > self._most:
            log.warning("more unknown points of sale: no longer logged (still counted)")
            return
        log.warning(
            "pos %r is not in %s: records with it are dead-lettered (the CDP would accept "
            "and drop their events); logged once per value",
            value,
            self._source,
        )


class Preparer:
    """Decode and map one record value; decoders are built once per topic.

    ``topic_for`` finds a topic's settings (``Settings.topic_for``: KeyError when none);
    ``registry`` is the process's one schema-registry client (None without a registry)."""

    def __init__(
        self,
        topic_for: Callable[[str], TopicSettings],
        registry: RegistryClient | None,
        mapper: Mapper,
        watch: SchemaWatch | None = None,
    ) -> None:
        self._topic_for = topic_for
        self._registry = registry
        self._mapper = mapper
        self._watch = watch  # re-checks the rules against each new writer schema id
        self._decoders: dict[str, ValueDecoder] = {}

    def __call__(self, topic: str, value: bytes | None) -> MapResult:
        decoder = self._decoders.get(topic) or self._decoder_for(topic)
        return self._mapper.map(decoder.decode(value), topic)  # a tombstone: DecodeError

    def _decoder_for(self, topic: str) -> ValueDecoder:
        try:
            spec = self._topic_for(topic)
        except KeyError:
            raise NotConfigured(f"topic {topic!r} is not in this config's topics") from None
        hook = self._watch.for_topic(topic) if self._watch else None
        decoder = build_decoder(spec, self._registry, hook)
        self._decoders[topic] = decoder
        return decoder


def build_decoder(
    spec: TopicSettings,
    registry: RegistryClient | None,
    on_new_schema: Callable[[int, Any], None] | None = None,
) -> ValueDecoder:
    """The value decoder a topic's config asks for (``registry`` only when it needs one)."""
    reader = load_schema(spec.reader_schema) if spec.reader_schema else None
    if spec.decoder == "schemaless":
        assert spec.schema_path is not None  # noqa: S101 - the config model guarantees it
        return SchemalessAvroDecoder(load_schema(spec.schema_path), reader)
    assert registry is not None  # noqa: S101 - the config model refuses a confluent topic without one
    return ConfluentAvroDecoder(registry, reader, on_new_schema=on_new_schema)


class Settle:
    """Decides each record's outcome and applies it; called on the reader's thread.

    ``wait`` belongs to the reader: ``run`` pauses consumption and sleeps (True when
    it is stopping), ``replay-dlq`` returns True at once and stops the replay.
    """

    def __init__(
        self,
        prepare: Prepare,
        lane_of: LaneOf,
        tracker: OffsetTracker,
        deadletter: DeadLetterQueue,
        state: RunState,
        wait: Wait,
        backoff: Backoff = TRANSIENT_BACKOFF,
        on_skipped: Callable[[str], None] | None = None,
        on_unknown_pos: Callable[[str], None] | None = None,
    ) -> None:
        self._prepare = prepare
        self._on_unknown_pos = on_unknown_pos or (lambda _value: None)
        self._lane_of = lane_of
        self._tracker = tracker
        self._dlq = deadletter
        self._state = state
        self._wait = wait
        self._backoff = backoff
        self._on_skipped = on_skipped or (lambda _rule: None)

    def outcome(self, record: ConsumedRecord) -> Outcome:
        """What becomes of ``record``, mapped by the rules of ``record.topic``.

        Raises the retriable error when ``wait`` gives up (the reader is stopping);
        any other error is a bug and aborts the reader."""
        for attempt in itertools.count(1):
            try:
                result = self._prepare(record.topic, record.value)
            except RecordError as exc:
                if isinstance(exc, UnknownPointOfSale):
                    self._on_unknown_pos(exc.value)
                why = Failure(str(exc), exc.rule, None, None, type(exc).__name__, exc.stage)
                return DeadLetter(why)
            except ConnectorError as exc:
                if not exc.retriable:
                    raise
                delay = self._backoff.delay(attempt)
                self._state.degraded_reason = str(exc)
                where = {"topic": record.tp[0], "partition": record.tp[1], "offset": record.offset}
                log.warning("retrying in %.1fs: %s", delay, exc, extra=where)
                if self._wait(delay):
                    raise
                continue
            if self._state.degraded_reason is not None:
                self._state.degraded_reason = None
            break
        if not result.events:
            return Skipped(result.skipped_by or "no-match")
        tp, offset = record.tp, record.offset
        lane = self._lane_of(tp, offset, result.events[0].guest_key)
        return Work(
            tp, offset, record.epoch, record.key, record.value, record.headers, lane,
            result.events,
        )  # fmt: skip

    def take(self, record: ConsumedRecord) -> Work | None:
        """Settle ``record`` (``outcome``) and apply what needs no HTTP; the ``Work`` to
        hand to dispatch, or None when it is skipped or being dead-lettered."""
        outcome = self.outcome(record)
        if isinstance(outcome, Work):
            return outcome
        tp, offset, epoch = record.tp, record.offset, record.epoch
        if isinstance(outcome, Skipped):
            self._tracker.finish(tp, offset, epoch)  # skipped by a rule: an outcome too
            self._on_skipped(outcome.rule)
            return None
        self._dlq.publish_failure(
            record, outcome.failure, lambda: self._tracker.finish(tp, offset, epoch)
        )
        return None
