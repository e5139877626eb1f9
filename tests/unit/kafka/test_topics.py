"""Topics without a broker: an unreachable broker is transient, never a config error, and
never makes a subscribed topic count as missing."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.cimpl import NewTopic

from connector.config import KafkaSettings, Settings, TopicSettings
from connector.errors import TransientError
from connector.kafka.topics import check_subscribed, ensure_topic
from connector.run_state import RunState
from connector.settle import deadletter

NOWHERE = "127.0.0.1:1"


def test_an_unreachable_broker_is_a_transient_error_within_the_timeout() -> None:
    kafka = KafkaSettings(bootstrap_servers=NOWHERE)
    with pytest.raises(TransientError, match=r"no metadata from 127\.0\.0\.1:1 in 0\.5s"):
        ensure_topic(kafka, NewTopic("t", 1), create=True, section="dead_letter", timeout=0.5)


def test_run_goes_on_with_a_warning_when_the_broker_does_not_answer_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "m.yaml").write_text("rules: []\n")
    settings = Settings.model_validate({
        "kafka": {"bootstrap_servers": NOWHERE},
        "topics": [{"name": "t", "decoder": "schemaless", "schema": "t.avsc"}],
        "mapping": tmp_path / "m.yaml",
        "dead_letter": {"topic": "t.dlq", "create_topic": False},
    })  # fmt: skip
    monkeypatch.setattr(deadletter, "START_CHECK_SECONDS", 0.5)

    deadletter.verify_at_start(settings)  # no ConfigError: nothing is known about the topic

    assert "dead-letter topic t.dlq not verified: no metadata" in caplog.text


class _Cluster:
    """A consumer's metadata lookup: the topics it knows, or no answer (None)."""

    def __init__(self, topics: set[str] | None) -> None:
        self.topics = topics
        self.asked = 0

    def list_topics(self, timeout: float) -> Any:
        self.asked += 1
        if self.topics is None:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "no answer"))
        return SimpleNamespace(topics={n: SimpleNamespace(error=None) for n in self.topics})


def _subscribed(*names: str) -> list[TopicSettings]:
    return [TopicSettings(name=n, decoder="schemaless", schema="t.avsc") for n in names]


def test_a_lookup_without_answer_keeps_the_last_finding(caplog: pytest.LogCaptureFixture) -> None:
    state = RunState()
    cluster = _Cluster({"clicks"})
    check_subscribed(cluster, _subscribed("clicks", "orders"), state)  # type: ignore[arg-type]
    assert state.missing_topics == ("orders",)
    cluster.topics = None  # brokers down: that is a reason of its own, not "missing"
    check_subscribed(cluster, _subscribed("clicks", "orders"), state)  # type: ignore[arg-type]
    assert state.missing_topics == ("orders",)
    assert "could not look up the subscribed topics" in caplog.text


def test_patterns_are_not_looked_up() -> None:
    state = RunState()
    cluster = _Cluster(set())
    pattern = TopicSettings(pattern="^clicks-.*", decoder="schemaless", schema="t.avsc")
    check_subscribed(cluster, [pattern], state)  # type: ignore[arg-type]
    assert cluster.asked == 0
    assert state.missing_topics == ()
