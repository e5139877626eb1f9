"""What a dead letter of the deliver stage carries: the original record and every
``cdp.errors.*`` / ``__connect.errors.*`` header, and ``on_done`` only once acknowledged.

confluent-kafka's Producer is replaced by a recording stand-in: this checks what the
connector hands to the producer; the integration tests check what reaches the broker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from connector.mapping import MappedEvent
from connector.records import Failure, Work
from connector.run_state import RunState
from connector.settle import deadletter
from connector.settle.deadletter import DeadLetterQueue, header_value


class RecordingProducer:
    def __init__(self, conf: dict[str, Any]) -> None:
        self.conf = conf
        self.produced: list[dict[str, Any]] = []

    def produce(self, topic: str, **kw: Any) -> None:
        self.produced.append({"topic": topic, **kw})

    def ack(self, err: Any = None) -> None:
        for message in self.produced:
            message["on_delivery"](err, None)


@pytest.fixture
def queue() -> tuple[DeadLetterQueue, RunState]:
    # The settings the wiring place (pipeline) builds the dead-letter producer with.
    producer = RecordingProducer(deadletter.producer_conf({"bootstrap.servers": "127.0.0.1:1"}))
    state = RunState()
    return DeadLetterQueue(producer, "dlq", state), state  # type: ignore[arg-type]


def test_a_deliver_stage_dead_letter_carries_every_header_and_the_original_record(
    queue: tuple[DeadLetterQueue, RunState],
) -> None:
    dlq, state = queue
    work = Work(("clicks", 2), 41, 1, b"key", b"value", [("trace", b"t-1")], "g",
                (MappedEvent("views", "VIEW", "g", b"{}"),))  # fmt: skip
    failure = Failure("retries exhausted after 8 attempts: 503: down", "views", 503, 8,
                      exception="RetriesExhausted")  # fmt: skip
    done: list[bool] = []
    dlq.publish_failure(work, failure, lambda: done.append(True))

    producer: RecordingProducer = dlq._producer  # type: ignore[assignment]
    assert producer.conf["acks"] == "all"
    assert producer.conf["enable.idempotence"] is True
    [message] = producer.produced
    assert (message["topic"], message["key"], message["value"]) == ("dlq", b"key", b"value")
    headers = message["headers"]
    assert headers[0] == ("trace", b"t-1")  # the original headers first, as they were
    assert {name: header_value(headers, name) for name, _ in headers[1:]} == {
        "__connect.errors.topic": "clicks",
        "__connect.errors.partition": "2",
        "__connect.errors.offset": "41",
        "__connect.errors.connector.name": "cdp-connector",
        "__connect.errors.task.id": "0",
        "__connect.errors.stage": "TASK_PUT",
        "__connect.errors.class.name": "RetriesExhausted",
        "__connect.errors.exception.message": "retries exhausted after 8 attempts: 503: down",
        "cdp.errors.stage": "deliver",
        "cdp.errors.rule": "views",
        "cdp.errors.http.status": "503",
        "cdp.errors.attempts": "8",
    }
    assert done == []  # not before Kafka acknowledged the write
    producer.ack()
    assert done == [True]
    assert state.halted_reason is None


def test_a_refused_dead_letter_write_stops_the_connector_and_finishes_nothing(
    queue: tuple[DeadLetterQueue, RunState],
) -> None:
    dlq, state = queue
    done: list[bool] = []
    on_done: Callable[[], None] = lambda: done.append(True)  # noqa: E731
    dlq.publish(key=None, value=b"v", original_headers=None, on_done=on_done,
                headers=[("cdp.errors.stage", b"decode")])  # fmt: skip
    dlq._producer.ack("broker says no")  # type: ignore[attr-defined]
    assert done == []
    assert state.halted_reason is not None
    assert "dead-letter write to 'dlq' failed" in state.halted_reason
