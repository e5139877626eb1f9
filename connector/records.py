"""The record types several stages share.

A reader (``source.kafka_source`` for ``run``, ``source.replay_reader`` for
``replay-dlq``) makes a ``ConsumedRecord`` of each message; ``settle`` makes a ``Work``
of each record that has events to post; ``delivery.dispatcher`` posts it and, when
delivery fails for good, hands it to the dead-letter sink with a ``Failure``;
``settle.deadletter`` turns that into headers. None of them needs another's module for
these types. It imports only the value types they carry (mapped events, partitions).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple, Protocol

from connector.config.delivery import Ordering
from connector.mapping import MappedEvent
from connector.offsets.tracker import TopicPartition

__all__ = [
    "ConsumedRecord",
    "DeliveryFailure",
    "Failure",
    "Headers",
    "LaneOf",
    "ReadAt",
    "Work",
    "lane_rule",
]

Headers = list[tuple[str, str | bytes | None]] | None  # as confluent-kafka hands them over


class ConsumedRecord(NamedTuple):
    """One record as a reader consumed it: where it was read, what it holds, which rules apply.

    A named tuple, not a frozen dataclass: one is made per record on the consumer thread,
    and a frozen dataclass sets each field through ``object.__setattr__`` (2 µs a record
    here against 0.3 µs)."""

    tp: TopicPartition
    offset: int
    epoch: int  # the partition's assignment epoch when it was read (offsets.tracker)
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp: int | None  # Kafka's timestamp in ms (create or log-append time); None if absent
    topic: str  # whose schema and rules apply: ``tp``'s topic, or a dead letter's origin


class ReadAt(Protocol):
    """What the dead-letter queue needs of a failed record: a ``ConsumedRecord`` or a ``Work``."""

    @property
    def tp(self) -> TopicPartition: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Headers: ...


@dataclass(slots=True)
class Work:
    """One consumed record whose events are waiting to be delivered."""

    tp: TopicPartition
    offset: int
    epoch: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    lane: Hashable
    events: tuple[MappedEvent, ...]
    delivered: frozenset[int] = frozenset()  # indices of events delivered before (replay)
    seq: int = 0  # arrival number, set by ``Dispatcher.submit``
    timestamp: int = -1  # the record's Kafka timestamp, ms (-1: none); its age (freshness)


# The lane of a record from its partition, offset and guest key: records on the same
# lane are posted one after another, in offset order.
LaneOf = Callable[[TopicPartition, int, str], Hashable]


def _by_key(_tp: TopicPartition, _offset: int, guest_key: str) -> Hashable:
    return guest_key


def _by_partition(tp: TopicPartition, _offset: int, _guest_key: str) -> Hashable:
    return tp


def _unordered(tp: TopicPartition, offset: int, _guest_key: str) -> Hashable:
    return (tp, offset)


def lane_rule(ordering: Ordering) -> LaneOf:
    """The lane function for ``delivery.ordering``, chosen once (not per record)."""
    return {"key": _by_key, "partition": _by_partition, "none": _unordered}[ordering]


class DeliveryFailure(StrEnum):
    """Why delivery gave up on an event (the dead letter's exception header)."""

    REJECTED = "DeliveryRejected"  # a permanent answer (4xx other than 401/403/408/429)
    RETRIES_EXHAUSTED = "RetriesExhausted"  # retryable failures past retry.max_attempts


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a record became a dead letter; ``deadletter`` turns it into headers."""

    reason: str
    rule: str | None
    status: int | None  # the CDP's answer; None before delivery or without an answer
    attempts: int | None  # delivery attempts; None when it failed before delivery
    exception: str = DeliveryFailure.REJECTED  # or the decode/map error's class name
    stage: str = "deliver"  # decode, map or deliver: the dead-letter headers say where
    event: tuple[int, str] | None = None  # index and type of the event that failed
    delivered: tuple[tuple[int, str], ...] = ()  # index and type of those delivered before
