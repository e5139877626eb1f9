"""Settle's ``Preparer``: one decoder per topic as its config asks, then the mapping.

Real decoders and Avro bytes, a loopback registry stand-in; the mapper and the
schema watch are recorded, since what they do with a record is tested elsewhere.
"""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer

from connector.config import Settings
from connector.decode.registry import registry_client
from connector.delivery.retry import Backoff
from connector.errors import TransientError
from connector.mapping import MappedEvent, MapResult
from connector.offsets.tracker import OffsetTracker
from connector.records import ConsumedRecord, Failure, Work, lane_rule
from connector.run_state import RunState
from connector.settle.stage import NotConfigured, Preparer, Settle
from tests.unit.fake_kafka import FakeDeadLetters
from tests.unit.registry_stub import StubRegistry, stub_registry

WRITER = {"type": "record", "name": "Click", "fields": [{"name": "page", "type": "string"}]}
# A newer reader: a field the writer does not have, with its default.
READER = {**WRITER, "fields": [*WRITER["fields"], {"name": "seconds", "type": "int", "default": 7}]}
EVOLVED = {**WRITER, "fields": [*WRITER["fields"], {"name": "ref", "type": ["null", "string"]}]}


def avro(schema: dict[str, Any], record: dict[str, Any], schema_id: int | None = None) -> bytes:
    """The record's Avro body; Confluent-framed when ``schema_id`` is given."""
    out = io.BytesIO()
    if schema_id is not None:
        out.write(b"\0" + schema_id.to_bytes(4, "big"))
    schemaless_writer(out, parse_schema(schema), record)
    return out.getvalue()


class RecordingMapper:
    """Maps every record to one VIEW event; remembers what it was given."""

    def __init__(self) -> None:
        self.mapped: list[tuple[dict[str, Any], str]] = []

    def map(self, record: dict[str, Any], topic: str) -> MapResult:
        self.mapped.append((record, topic))
        return MapResult((MappedEvent("views", "VIEW", "g", b"{}"),), None)


class RecordingWatch:
    """A ``SchemaWatch`` that records which topics asked for a hook and what it was told."""

    def __init__(self) -> None:
        self.topics: list[str] = []
        self.seen: list[tuple[str, int, Any]] = []

    def for_topic(self, topic: str) -> Any:
        self.topics.append(topic)
        return lambda schema_id, schema: self.seen.append((topic, schema_id, schema))


def write(tmp_path: Path, name: str, schema: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(schema))
    return str(path)


def settings(*topics: dict[str, Any], registry: dict[str, Any] | None = None) -> Settings:
    raw: dict[str, Any] = {"topics": list(topics), "mapping": "m.yaml"}
    if registry is not None:
        raw["schema_registry"] = registry
    return Settings.model_validate(raw)


def preparer(config: Settings, watch: Any = None) -> tuple[Preparer, RecordingMapper]:
    mapper = RecordingMapper()
    as_mapper: Any = mapper
    return Preparer(
        config.topic_for, registry_client(config.schema_registry), as_mapper, watch
    ), mapper


@pytest.fixture
def registry() -> Iterator[StubRegistry]:
    with stub_registry() as stub:
        stub.serve_schema(12, WRITER)
        stub.serve_schema(13, EVOLVED)
        yield stub


def test_a_schemaless_topic_is_decoded_with_its_writer_schema_and_mapped_as_its_topic(
    tmp_path: Path,
) -> None:
    schema = write(tmp_path, "click.avsc", WRITER)
    prepare, mapper = preparer(
        settings({"name": "clicks", "decoder": "schemaless", "schema": schema})
    )
    result = prepare("clicks", avro(WRITER, {"page": "/a"}))
    assert result.events[0].event_type == "VIEW"
    assert mapper.mapped == [({"page": "/a"}, "clicks")]


@pytest.mark.parametrize("decoder", ["schemaless", "confluent"])
def test_a_reader_schema_gives_records_its_shape(
    tmp_path: Path, registry: StubRegistry, decoder: str
) -> None:
    writer = write(tmp_path, "click.avsc", WRITER)
    reader = write(tmp_path, "click-v2.avsc", READER)
    topic = {"name": "clicks", "decoder": decoder, "reader_schema": reader}
    if decoder == "schemaless":
        topic["schema"] = writer
    watch = RecordingWatch()
    prepare, mapper = preparer(settings(topic, registry={"url": registry.url}), watch)
    framing = 12 if decoder == "confluent" else None
    prepare("clicks", avro(WRITER, {"page": "/a"}, framing))
    assert mapper.mapped == [({"page": "/a", "seconds": 7}, "clicks")]
    # Records take the reader's shape, which the start-up check held the rules against.
    assert watch.seen == []


def test_a_confluent_topic_reads_each_writer_schema_from_the_registry(
    registry: StubRegistry,
) -> None:
    watch = RecordingWatch()
    prepare, mapper = preparer(settings({"name": "clicks"}, registry={"url": registry.url}), watch)
    for schema_id, schema, record in [
        (12, WRITER, {"page": "/a"}),
        (12, WRITER, {"page": "/b"}),
        (13, EVOLVED, {"page": "/c", "ref": "x"}),
        (12, WRITER, {"page": "/d"}),
    ]:
        prepare("clicks", avro(schema, record, schema_id))
    assert mapper.mapped == [
        ({"page": "/a"}, "clicks"),
        ({"page": "/b"}, "clicks"),
        ({"page": "/c", "ref": "x"}, "clicks"),
        ({"page": "/d"}, "clicks"),
    ]
    # One decoder for the topic: the rules are re-checked once per new writer schema id.
    assert watch.topics == ["clicks"]
    assert [(topic, schema_id) for topic, schema_id, _ in watch.seen] == [
        ("clicks", 12),
        ("clicks", 13),
    ]
    assert watch.seen[1][2]["fields"][1]["name"] == "ref"  # the writer schema, parsed
    assert [path for path, _ in registry.requests] == ["/schemas/ids/12", "/schemas/ids/13"]


def test_each_topic_gets_the_decoder_its_config_names(
    tmp_path: Path, registry: StubRegistry
) -> None:
    schema = write(tmp_path, "click.avsc", WRITER)
    watch = RecordingWatch()
    config = settings(
        {"name": "local", "decoder": "schemaless", "schema": schema},
        {"pattern": "remote-.*"},
        registry={"url": registry.url},
    )
    prepare, mapper = preparer(config, watch)
    prepare("remote-eu", avro(WRITER, {"page": "/eu"}, 12))
    prepare("local", avro(WRITER, {"page": "/here"}))
    prepare("remote-us", avro(WRITER, {"page": "/us"}, 12))
    assert mapper.mapped == [
        ({"page": "/eu"}, "remote-eu"),
        ({"page": "/here"}, "local"),
        ({"page": "/us"}, "remote-us"),
    ]
    assert watch.topics == ["remote-eu", "local", "remote-us"]  # a decoder per topic
    assert [(t, i) for t, i, _ in watch.seen] == [("remote-eu", 12), ("remote-us", 12)]


def test_the_registry_is_asked_with_the_configured_credentials(
    registry: StubRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REG_USER", "reader")
    monkeypatch.setenv("REG_PASSWORD", "s3cret")
    config = settings(
        {"name": "clicks"},
        registry={"url": registry.url, "username_env": "REG_USER", "password_env": "REG_PASSWORD"},
    )
    prepare, _ = preparer(config)
    prepare("clicks", avro(WRITER, {"page": "/a"}, 12))
    expected = "Basic " + base64.b64encode(b"reader:s3cret").decode()
    assert registry.requests == [("/schemas/ids/12", expected)]


def test_a_registry_that_does_not_answer_in_its_timeout_is_a_transient_error() -> None:
    silent = socket.socket()  # accepts connections (the backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    prepare, _ = preparer(
        settings({"name": "clicks"}, registry={"url": url, "timeout_seconds": 0.2})
    )
    raised: list[BaseException] = []

    def decode() -> None:
        try:
            prepare("clicks", avro(WRITER, {"page": "/a"}, 12))
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            raised.append(exc)

    thread = threading.Thread(target=decode, daemon=True)
    try:
        thread.start()
        thread.join(3.0)  # far below the 5 s default: the configured timeout applies
        assert not thread.is_alive(), "the registry request ignored timeout_seconds"
    finally:
        silent.close()
    assert len(raised) == 1
    assert isinstance(raised[0], TransientError)
    assert "unreachable" in str(raised[0])


class Rig:
    """A ``Settle`` over a real ``Preparer``; dead letters are acknowledged at once."""

    def __init__(self, config: Settings) -> None:
        self.tracker = OffsetTracker()
        self.dlq = FakeDeadLetters()
        self.prepare, self.mapper = preparer(config)
        dlq: Any = self.dlq
        self.settle = Settle(
            self.prepare, lane_rule("key"), self.tracker, dlq, RunState(), lambda _d: True,
            backoff=Backoff(1.0, 4.0, rand=lambda: 1.0),
        )  # fmt: skip

    def take(self, tp: tuple[str, int], value: bytes | None, topic: str) -> Work | None:
        epoch = self.tracker.assign(tp)
        self.tracker.add(tp, 0)
        work = self.settle.take(ConsumedRecord(tp, 0, epoch, b"k", value, None, None, topic))
        assert self.tracker.pending == (0 if work is None else 1)
        return work


def test_a_replayed_record_of_a_topic_not_configured_is_a_replay_dead_letter(
    tmp_path: Path,
) -> None:
    schema = write(tmp_path, "click.avsc", WRITER)
    rig = Rig(settings({"name": "clicks", "decoder": "schemaless", "schema": schema}))
    assert rig.take(("cdp.dlq", 0), avro(WRITER, {"page": "/a"}), "orders") is None
    reason = "topic 'orders' is not in this config's topics"
    assert rig.dlq.failures == [
        (("cdp.dlq", 0), 0, Failure(reason, None, None, None, "NotConfigured", "replay"))
    ]
    with pytest.raises(NotConfigured, match="'orders' is not in this config's topics"):
        rig.prepare("orders", b"")
    assert rig.mapper.mapped == []


@pytest.mark.parametrize("decoder", ["schemaless", "confluent"])
def test_a_tombstone_is_a_decode_stage_dead_letter(
    tmp_path: Path, registry: StubRegistry, decoder: str
) -> None:
    topic = {"name": "clicks", "decoder": decoder}
    if decoder == "schemaless":
        topic["schema"] = write(tmp_path, "click.avsc", WRITER)
    rig = Rig(settings(topic, registry={"url": registry.url}))
    assert rig.take(("clicks", 3), None, "clicks") is None
    reason = "record has no value (a tombstone); nothing to map"
    assert rig.dlq.failures == [
        (("clicks", 3), 0, Failure(reason, None, None, None, "DecodeError", "decode"))
    ]
    assert rig.mapper.mapped == []
    assert registry.requests == []  # nothing to look up


def test_a_schemaless_record_is_work_with_the_mapped_events(tmp_path: Path) -> None:
    schema = write(tmp_path, "click.avsc", WRITER)
    rig = Rig(settings({"name": "clicks", "decoder": "schemaless", "schema": schema}))
    value = avro(WRITER, {"page": "/a"})
    work = rig.take(("clicks", 1), value, "clicks")
    assert work is not None
    assert (work.value, work.lane, [e.event_type for e in work.events]) == (value, "g", ["VIEW"])
