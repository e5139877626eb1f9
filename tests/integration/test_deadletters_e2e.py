"""Dead letters end to end, from each stage, as the running connector writes them; and a
dead-letter write the broker refuses, which must stop the connector at that record."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.sample_clickstream import sample_records
from tests.fixtures_sandbox import SandboxProcess, start_sandbox, stop_sandbox
from tests.integration.connector_proc import ConnectorFactory, wait_caught_up, wait_for
from tests.integration.guarantee_helpers import Stream, delivery_counts

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AGENT_MAPPING = str(Path(__file__).parent / "mappings" / "view-with-agent.yaml")
MAX_BODY = 1500  # the dedicated sandbox refuses larger bodies with 413
ORIGINAL_HEADERS: list[tuple[str, bytes | None]] = [
    ("trace-id", b"\x00\x01\xfe\xff binary"),
    ("tenant", "shop-ü".encode()),
    ("tenant", b"repeated"),  # a repeated name keeps both, in order
    ("no-value", None),
]


@pytest.fixture
def small_body_sandbox(tmp_path: Path, cdp_sandbox: SandboxProcess) -> Iterator[SandboxProcess]:
    """A sandbox of its own that answers 413 to bodies over ``MAX_BODY`` bytes."""
    sandbox = start_sandbox(tmp_path, "--max-body-bytes", str(MAX_BODY))
    yield sandbox
    stop_sandbox(sandbox)


def header_dict(msg: Any) -> dict[str, str]:
    return {k: v.decode() for k, v in (msg.headers() or []) if k not in dict(ORIGINAL_HEADERS)}


def test_decode_map_and_deliver_stage_dead_letters_carry_every_header_and_the_original(
    bootstrap: str, schema_registry: Any, unique: str, connector_factory: ConnectorFactory,
    small_body_sandbox: SandboxProcess,
) -> None:  # fmt: skip
    sandbox = small_body_sandbox
    stream = Stream(bootstrap, schema_registry.url, unique, partitions=1)
    records = sample_records(30, guests=5, seed=1811)
    records[7]["currency"] = "euro"  # map stage: not ISO 4217 after `upper`
    records[19]["user_agent"] = "Mozilla/5.0 " + "x" * 2000  # deliver stage: 413
    stream.produce(records[:25], headers=ORIGINAL_HEADERS)
    bad_bytes = b"\x07not avro at all"
    stream.produce(
        [{"anonymous_id": "broken", "event_id": "broken"}], values=[bad_bytes],
        headers=ORIGINAL_HEADERS,
    )  # fmt: skip  # decode stage, offset 25
    stream.produce(records[25:], headers=ORIGINAL_HEADERS)
    connector = connector_factory.start(
        stream.config(connector_factory, sandbox.url, mapping=AGENT_MAPPING)
    )
    wait_caught_up(bootstrap, stream.group, stream.topic, 1, 60)

    letters = stream.dead_letters(3)
    assert len(letters) == 3
    by_offset = {int(header_dict(m)["__connect.errors.offset"]): m for m in letters}
    assert sorted(by_offset) == [7, 19, 25]
    common = {
        "__connect.errors.topic": stream.topic,
        "__connect.errors.partition": "0",
        "__connect.errors.connector.name": "cdp-connector",
        "__connect.errors.task.id": "0",
    }
    expected = {
        7: {"__connect.errors.stage": "TRANSFORMATION", "__connect.errors.class.name":
            "MappingError", "cdp.errors.stage": "map", "cdp.errors.rule": "view-with-agent"},
        19: {"__connect.errors.stage": "TASK_PUT", "__connect.errors.class.name":
             "DeliveryRejected", "cdp.errors.stage": "deliver",
             "cdp.errors.rule": "view-with-agent", "cdp.errors.http.status": "413",
             "cdp.errors.attempts": "1"},
        25: {"__connect.errors.stage": "VALUE_CONVERTER", "__connect.errors.class.name":
             "DecodeError", "cdp.errors.stage": "decode"},
    }  # fmt: skip
    said = {7: ["view-with-agent", "currency"], 19: ["413"], 25: ["magic"]}
    values = {7: stream.serialize(records[7], stream.topic), 25: bad_bytes}
    values[19] = stream.serialize(records[19], stream.topic)
    for offset, msg in by_offset.items():
        headers = header_dict(msg)
        message = headers.pop("__connect.errors.exception.message")
        assert headers == {
            **common, "__connect.errors.offset": str(offset), **expected[offset]
        }, offset  # fmt: skip
        for word in said[offset]:
            assert word.lower() in message.lower(), (offset, message)
        # The original record, byte for byte: key, value, and its headers first, in order.
        assert msg.value() == values[offset]
        key = b"broken" if offset == 25 else records[offset]["anonymous_id"].encode()
        assert msg.key() == key
        assert (msg.headers() or [])[: len(ORIGINAL_HEADERS)] == ORIGINAL_HEADERS
        # No credential in any header, in any encoding.
        raw = b"".join(k.encode() + (v or b"") for k, v in msg.headers() or [])
        basic = f"{sandbox.client_key}:{sandbox.api_token}".encode()
        for secret in (sandbox.api_token.encode(), basic, base64.b64encode(basic),
                       base64.urlsafe_b64encode(basic)):  # fmt: skip
            assert secret not in raw, offset

    counts = delivery_counts(sandbox)
    assert set(counts) == {r["event_id"] for i, r in enumerate(records) if i not in (7, 19)}
    assert sandbox.stats()["by_status"].get("413") == 1  # permanent: not retried
    for stage in ("decode", "map", "deliver"):
        assert connector.metric("cdp_connector_records_dead_lettered_total", stage=stage) == 1
    assert connector.terminate() == 0
    stream.close()


def test_dead_letter_write_refused_by_the_broker_stops_at_exactly_that_record(
    bootstrap: str, schema_registry: Any, unique: str, connector_factory: ConnectorFactory,
    cdp_sandbox: SandboxProcess,
) -> None:  # fmt: skip
    # The broker takes at most 1 KiB per batch on the DLQ; the producer's own limit is 1 MB,
    # so the write leaves the client and the broker answers MESSAGE_TOO_LARGE.
    stream = Stream(
        bootstrap, schema_registry.url, unique, partitions=1,
        dlq_config={"max.message.bytes": "1024"},
    )  # fmt: skip
    records = sample_records(20, guests=4, seed=1812)
    stream.produce(records[:10])
    connector = connector_factory.start(
        stream.config(connector_factory, cdp_sandbox.url),
        expect_errors=[r"dead-letter write failed", r"stopping: dead-letter write",
                       r"stopped because: dead-letter write"],
    )  # fmt: skip
    wait_for(lambda: stream.committed() == {0: 10}, 30, "the first ten records committed")

    bad = b"\x07" + b"not avro " * 500  # a decode failure whose dead letter is ~4.5 KiB
    stream.produce([{"anonymous_id": "bad", "event_id": "bad"}], values=[bad])  # offset 10
    stream.produce(records[10:])

    assert connector.proc.wait(60) == 1
    output = connector.output()
    assert "dead-letter write" in output
    assert "Broker: Message size too large" in output  # the broker refused it, not the client
    assert stream.committed() == {0: 10}  # exactly up to the record whose outcome is nowhere
    assert stream.dead_letters(0, timeout=2) == []
    stream.close()


def test_events_the_api_refuses_with_400_are_dead_lettered_once_with_the_status(
    bootstrap: str, schema_registry: Any, unique: str, connector_factory: ConnectorFactory,
    cdp_sitecore_sandbox: SandboxProcess,
) -> None:  # fmt: skip
    # An API that validates another dialect: every asyncapi event is a 400 there
    # (session_id is not a sitecore field; page and language are required).
    stream = Stream(bootstrap, schema_registry.url, unique, partitions=1)
    records = sample_records(8, guests=3, seed=1813)
    stream.produce(records, headers=ORIGINAL_HEADERS)
    connector = connector_factory.start(stream.config(connector_factory, cdp_sitecore_sandbox.url))
    wait_caught_up(bootstrap, stream.group, stream.topic, 1, 60)

    letters = stream.dead_letters(len(records))  # in the order they failed: lanes run at once
    letters.sort(key=lambda m: int(header_dict(m)["__connect.errors.offset"]))
    assert [int(header_dict(m)["__connect.errors.offset"]) for m in letters] == list(range(8))
    for offset, msg in enumerate(letters):
        headers = header_dict(msg)
        message = headers.pop("__connect.errors.exception.message")
        assert headers == {
            "__connect.errors.topic": stream.topic, "__connect.errors.partition": "0",
            "__connect.errors.offset": str(offset), "__connect.errors.connector.name":
            "cdp-connector", "__connect.errors.task.id": "0",
            "__connect.errors.stage": "TASK_PUT", "__connect.errors.class.name":
            "DeliveryRejected", "cdp.errors.stage": "deliver",
            "cdp.errors.rule": "everything-as-view", "cdp.errors.http.status": "400",
            "cdp.errors.attempts": "1",
        }  # fmt: skip
        assert any(field in message for field in ("session_id", "language", "page")), message
        assert msg.value() == stream.serialize(records[offset], stream.topic)
        assert msg.key() == records[offset]["anonymous_id"].encode()
        assert (msg.headers() or [])[: len(ORIGINAL_HEADERS)] == ORIGINAL_HEADERS
    assert cdp_sitecore_sandbox.stats()["by_status"] == {"400": len(records)}  # never retried
    assert connector.metric("cdp_connector_records_dead_lettered_total", stage="deliver") == 8
    assert connector.terminate() == 0
    stream.close()
