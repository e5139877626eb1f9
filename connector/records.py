"""The record types several stages share: a leaf module, it imports no stage.

``settle`` makes a ``Work`` of each record that has events to post; ``dispatch``
posts it and, when delivery fails for good, hands it to the dead-letter sink with
a ``Failure``; ``deadletter`` turns that into headers. None of them needs another's
module for these types.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from connector.mapping import MappedEvent
from connector.offsets.tracker import TopicPartition

__all__ = ["Failure", "Headers", "Work", "lane_for"]

Headers = list[tuple[str, str | bytes | None]] | None  # as confluent-kafka hands them over


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


def lane_for(ordering: str, tp: TopicPartition, offset: int, guest_key: str) -> Hashable:
    """Records on the same lane are posted one after another, in offset order."""
    if ordering == "key":
        return guest_key
    if ordering == "partition":
        return tp
    return (tp, offset)


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a record became a dead letter; ``deadletter`` turns it into headers."""

    reason: str
    rule: str | None
    status: int | None  # the CDP's answer; None before delivery or without an answer
    attempts: int | None  # delivery attempts; None when it failed before delivery
    exception: str = "DeliveryRejected"
    stage: str = "deliver"  # decode, map or deliver: the dead-letter headers say where
    event: tuple[int, str] | None = None  # index and type of the event that failed
    delivered: tuple[tuple[int, str], ...] = ()  # index and type of those delivered before
