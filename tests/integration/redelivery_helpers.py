"""Shared parts of the redelivery tests (``test_redelivery.py``).

Everything is counted per record, never per request: each record becomes events that
carry its ``event_id`` (``ext.eventId``), so what the sandbox accepted tells which
records arrived, how often, and in which order per guest.
"""

from __future__ import annotations

import json
import struct
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import fastavro
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from connector.sample_clickstream import encode_confluent, sample_records
from tests.integration.connector_proc import (
    ConnectorFactory,
    ConnectorProcess,
    avro_serializer,
    wait_for,
)
from tests.integration.streams import VIEW_ALL, TestStream


def event_id(accepted: Mapping[str, Any]) -> str:
    """The record an accepted sandbox event came from."""
    return str(accepted["event"]["ext"]["eventId"])


class Backlog(TestStream):
    """A keyed topic holding sample records, its dead-letter topic and a consumer group."""

    default_mapping = VIEW_ALL

    def __init__(
        self,
        bootstrap: str,
        registry_url: str,
        unique: str,
        *,
        records: int,
        guests: int,
        seed: int,
        partitions: int = 6,
    ) -> None:
        super().__init__(
            bootstrap, registry_url, unique, prefix="redelivery", group_prefix="cdp",
            partitions=partitions,
        )  # fmt: skip
        self.records = sample_records(records, guests=guests, seed=seed)
        self.ids = [r["event_id"] for r in self.records]
        assert len(set(self.ids)) == len(self.ids)
        # Records of one guest share a key, hence a partition: production order is
        # their offset order.
        self.position = {r["event_id"]: i for i, r in enumerate(self.records)}
        self._produce()

    def _produce(self) -> None:
        # confluent-kafka's serializer registers the schema; the same bytes for the rest
        # come faster from fastavro with the schema the registry holds under that id.
        client = SchemaRegistryClient({"url": self.registry_url})
        try:
            first = avro_serializer(client)(self.records[0], self.topic)
            schema_id = struct.unpack(">I", first[1:5])[0]
            registered = json.loads(client.get_schema(schema_id).schema_str)
        finally:
            client.close()
        values = encode_confluent(self.records, fastavro.parse_schema(registered), schema_id)
        assert values[0] == first
        producer = Producer(
            {"bootstrap.servers": self.bootstrap, "linger.ms": 20, "enable.idempotence": True}
        )
        for record, value in zip(self.records, values, strict=True):
            producer.produce(self.topic, key=record["anonymous_id"].encode(), value=value)
            producer.poll(0)
        assert producer.flush(30) == 0

    def caught_up(self, timeout: float = 90) -> None:
        super().caught_up(timeout)


@dataclass
class Delivered:
    """What the sandbox saw during one stretch: accepted events (in the order they were
    accepted) and every event request (start, end, guest, status)."""

    events: list[dict[str, Any]]
    requests: list[dict[str, Any]]

    def ids(self) -> list[str]:
        return [event_id(e) for e in self.events]

    def accepted_between(self, start: float, end: float) -> int:
        """Requests answered 201 whose answer was written in ``[start, end]`` (wall clock)."""
        return sum(
            1
            for r in self.requests
            if r["status"] == "201" and r["end"] is not None and start <= r["end"] <= end
        )


def open_requests(sandbox: Any) -> int:
    return sum(1 for r in sandbox.requests() if r["end"] is None)


def snapshot(sandbox: Any, timeout: float = 15) -> Delivered:
    """What the sandbox holds, once no request is open any more (a killed client's
    requests are ended by the sandbox; nothing is accepted after this)."""
    wait_for(lambda: open_requests(sandbox) == 0, timeout, "no request open at the sandbox")
    return Delivered(sandbox.records(), sandbox.requests())


def accepted(sandbox: Any) -> int:
    return int(sandbox.stats()["accepted"])


def wait_accepted(sandbox: Any, at_least: int, timeout: float = 60, poll: float = 0.02) -> None:
    """Until the sandbox has accepted ``at_least`` events (polled every ``poll`` s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if accepted(sandbox) >= at_least:
            return
        time.sleep(poll)
    raise AssertionError(f"sandbox never accepted {at_least} events ({accepted(sandbox)})")


def reposted_per_life(lives: list[Delivered]) -> list[int]:
    """For each life, how many of the records it delivered a later life posted again.

    A re-posted record counts against the last life that delivered it before: that
    life's commits (or its crash) decide whether it is posted again. Counting against
    the next life alone would be wrong: a restarted process that never reads a
    partition before it is killed too (a fresh partition's fetch starts late) leaves
    the earlier life's uncommitted records to the life after it."""
    last_delivered_by: dict[str, int] = {}
    reposted = [0] * len(lives)
    for life, delivered in enumerate(lives):
        for record in delivered.ids():
            if record in last_delivered_by:
                reposted[last_delivered_by[record]] += 1
        for record in delivered.ids():
            last_delivered_by[record] = life
    return reposted


def duplicates(ids: Iterable[str]) -> int:
    """Events beyond the first per record."""
    return sum(n - 1 for n in Counter(ids).values())


def out_of_order(events: Iterable[Mapping[str, Any]], position: Mapping[str, int]) -> list[str]:
    """Guests that received an older record's event after a newer one's (a repeat of the
    newest record so far is in order; going back is not)."""
    newest: dict[str, int] = {}
    bad: set[str] = set()
    for accepted_event in events:
        guest = str(accepted_event["event"]["browser_id"])
        pos = position[event_id(accepted_event)]
        if pos < newest.get(guest, -1):
            bad.add(guest)
        newest[guest] = max(newest.get(guest, -1), pos)
    return sorted(bad)


def overlapping_guests(requests: Iterable[Mapping[str, Any]]) -> list[str]:
    """Guests with two event requests open at once, from the requests' start and end
    (a request still open counts as open until now)."""
    by_guest: dict[str, list[tuple[float, float]]] = {}
    for r in requests:
        if r["browser_id"] is not None:
            end = r["end"] if r["end"] is not None else float("inf")
            by_guest.setdefault(r["browser_id"], []).append((r["start"], end))
    bad = []
    for guest, spans in by_guest.items():
        spans.sort()
        latest_end = float("-inf")
        for start, end in spans:
            if start < latest_end:
                bad.append(guest)
                break
            latest_end = max(latest_end, end)
    return sorted(bad)


def start_replica(
    factory: ConnectorFactory,
    config: dict[str, Any],
    name: str,
    *,
    env: Mapping[str, str] | None = None,
    **options: Any,
) -> ConnectorProcess:
    """``factory.start`` with ``env`` added to this one process's environment (e.g. the
    variable that holds its ``group.instance.id``)."""
    saved = dict(factory.env)
    factory.env.update(env or {})
    try:
        return factory.start(config, name, **options)
    finally:
        factory.env.clear()
        factory.env.update(saved)


def delivered_by(connector: ConnectorProcess) -> float:
    return connector.metric("cdp_connector_records_delivered_total")
