"""ensure_topic without a broker: an unreachable broker is transient, never a config error."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka.cimpl import NewTopic

from connector import deadletter
from connector.config import KafkaSettings, Settings
from connector.errors import TransientError
from connector.topics import ensure_topic

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
