"""Each kind of Kafka client gets only the librdkafka keys it understands (no CONFWARN).

librdkafka prints a CONFWARN line when a client is given a property of the other kind
(a consumer-only key on a producer); the connector routes ``kafka.client`` keys by the
tables in connector/config/librdkafka_keys.py. These tests hold those tables against the
librdkafka the connector ships with: a real client is built (no broker needed) and its log is read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from connector.config import KafkaSettings
from connector.config.librdkafka_keys import CONSUMER_ONLY, PRODUCER_ONLY

NOWHERE = "127.0.0.1:1"  # clients are only built, never connected
# Values that at least one property of each kind accepts (librdkafka checks them).
CANDIDATES = ["1000", "true", "earliest", "read_committed", "lz4", "consistent_random",
              "fifo", "classic", "consumer", "range", "none", "1"]  # fmt: skip


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def librdkafka_log() -> Iterator[tuple[logging.Logger, _Lines]]:
    logger = logging.getLogger("tests.librdkafka")
    handler = _Lines()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield logger, handler
    logger.removeHandler(handler)


def confwarns(make: Callable[[dict[str, Any]], Any], conf: dict[str, Any], log: Any) -> list[str]:
    logger, handler = log
    handler.lines.clear()
    client = make({**conf, "logger": logger})
    client.poll(0)  # serves the log lines queued while the client was built
    if isinstance(client, Consumer):
        client.close()
    return [line for line in handler.lines if "CONFWARN" in line]


def _producer(conf: dict[str, Any]) -> Producer:
    return Producer(conf)


def _consumer(conf: dict[str, Any]) -> Consumer:
    return Consumer({"group.id": "tests", **conf})


def _admin(conf: dict[str, Any]) -> AdminClient:
    return AdminClient(conf)


@pytest.mark.parametrize(
    ("key", "other"),
    [
        *((k, _producer) for k in sorted(CONSUMER_ONLY)),
        *((k, _consumer) for k in sorted(PRODUCER_ONLY)),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_every_tabled_key_makes_the_other_kind_of_client_warn(
    key: str, other: Callable[[dict[str, Any]], Any], librdkafka_log: Any
) -> None:
    for value in CANDIDATES:
        try:
            warnings = confwarns(other, {"bootstrap.servers": NOWHERE, key: value}, librdkafka_log)
        except KafkaException:
            continue  # not a valid value for this key; try the next
        assert warnings, f"{key}={value}: the other kind of client took it without a warning"
        return
    pytest.fail(f"no candidate value is valid for {key}")


def test_no_client_warns_about_the_keys_it_is_given(librdkafka_log: Any) -> None:
    kafka = KafkaSettings(
        bootstrap_servers=NOWHERE,
        client={
            "session.timeout.ms": 6000,  # consumer-only keys from the docs
            "auto.offset.reset": "earliest",
            "max.poll.interval.ms": 300000,
            "linger.ms": 10,  # producer-only
            "compression.type": "lz4",
            "socket.timeout.ms": 30000,  # every client
        },
    )
    # The capture works: the keys as one dict make a producer warn.
    assert confwarns(_producer, {**kafka.admin_conf(), **kafka.client}, librdkafka_log)

    assert confwarns(_consumer, {**kafka.consumer_conf(), **kafka.member_conf()},
                     librdkafka_log) == []  # fmt: skip
    assert confwarns(_producer, kafka.producer_conf(), librdkafka_log) == []
    assert confwarns(_admin, kafka.admin_conf(), librdkafka_log) == []
