"""`cdp-connector replay-dlq`: real broker, registry and sandbox; dead letters crafted as
the connector writes them, replayed after the cause is "fixed"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from connector.sample_clickstream import sample_records
from tests.integration.connector_proc import ConnectorFactory, avro_serializer, committed
from tests.integration.kafka_helpers import create_topic
from tests.integration.ops_helpers import (
    headers_of,
    produce_dead_letters,
    run_cli,
    write_config,
)
from tests.integration.streams import VIEW_ALL, read_topic

pytestmark = pytest.mark.integration

ATTEMPTS = "cdp.errors.replay.attempts"


class Letters:
    """A source topic name, its DLQ holding good and undecodable dead letters, a config."""

    def __init__(self, bootstrap: str, unique: str, registry_url: str, sandbox_url: str,
                 factory: ConnectorFactory, tmp: Path) -> None:  # fmt: skip
        self.bootstrap = bootstrap
        self.topic, self.dlq, self.group = f"src-{unique}", f"src-{unique}.dlq", f"cdp-{unique}"
        create_topic(bootstrap, self.topic, 1)
        create_topic(bootstrap, self.dlq, 1)
        client = SchemaRegistryClient({"url": registry_url})
        serialize = avro_serializer(client)
        self.records = sample_records(6, guests=6, seed=31)
        self.good = [(r["anonymous_id"].encode(), serialize(r, self.topic), "deliver")
                     for r in self.records]  # fmt: skip
        client.close()
        self.bad = [(b"bad-1", b"\x07not avro", "decode"), (b"bad-2", b"\x00\x00", "decode")]
        produce_dead_letters(
            bootstrap, self.dlq, self.topic, self.good + self.bad,
            extra_headers=(("trace-id", b"t-123"),),
        )  # fmt: skip
        self.config_path = write_config(tmp, factory.config(
            kafka={"group_id": self.group},
            topics=[{"name": self.topic, "decoder": "confluent"}],
            schema_registry={"url": registry_url},
            cdp={"base_url": sandbox_url, "region": None},
            dead_letter={"topic": self.dlq},
            mapping=VIEW_ALL,
            delivery={"retry": {"max_attempts": 2, "initial_backoff_seconds": 0.05}},
        ))  # fmt: skip
        self.env = factory.env

    def replay(self, *args: str) -> Any:
        return run_cli("replay-dlq", "--config", str(self.config_path), *args, env=self.env)

    def replay_committed(self) -> int | None:
        return committed(self.bootstrap, f"{self.group}.dlq-replay", self.dlq, 1).get(0)


@pytest.fixture
def letters(
    bootstrap: str, unique: str, schema_registry: Any, cdp_sandbox: Any,
    connector_factory: ConnectorFactory, tmp_path: Path,
) -> Letters:  # fmt: skip
    return Letters(bootstrap, unique, schema_registry.url, cdp_sandbox.url, connector_factory,
                   tmp_path)  # fmt: skip


def test_replay_delivers_what_now_works_and_writes_back_what_fails_again(
    letters: Letters, cdp_sandbox: Any
) -> None:
    result = letters.replay()
    assert result.returncode == 0, result.stdout + result.stderr

    ids = sorted(e["ext"]["eventId"] for e in cdp_sandbox.events())
    assert ids == sorted(r["event_id"] for r in letters.records)
    messages = read_topic(letters.bootstrap, letters.dlq, 10)
    assert len(messages) == 10  # 8 as before + the 2 undecodable ones written back
    back = messages[8:]
    assert sorted(m.key() for m in back) == [b"bad-1", b"bad-2"]
    for msg in back:
        headers = headers_of(msg)
        assert headers[ATTEMPTS] == "1"
        assert headers["__connect.errors.topic"] == letters.topic  # the origin, not the DLQ
        assert headers["cdp.errors.stage"] == "decode"
        assert headers["trace-id"] == "t-123"  # the record's own headers travel along
        assert [k for k, _ in msg.headers()].count("__connect.errors.offset") == 1
    assert letters.replay_committed() == 8  # the end as of start, not the written-back ones
    assert "delivered           6" in result.stdout
    assert "failed again        2" in result.stdout

    again = letters.replay()  # only the written-back pair is left; they fail once more
    assert again.returncode == 0, again.stdout + again.stderr
    messages = read_topic(letters.bootstrap, letters.dlq, 12)
    assert [headers_of(m)[ATTEMPTS] for m in messages[10:]] == ["2", "2"]
    assert letters.replay_committed() == 10
    assert len(cdp_sandbox.events()) == 6  # nothing delivered twice


def test_replay_filter_leaves_other_records_alone(letters: Letters, cdp_sandbox: Any) -> None:
    result = letters.replay("--filter", "\"cdp.errors.stage\" == 'decode'")
    assert result.returncode == 0, result.stdout + result.stderr
    assert cdp_sandbox.events() == []
    assert "filtered out        6" in result.stdout
    assert len(read_topic(letters.bootstrap, letters.dlq, 10)) == 10  # only the 2 replayed
    assert letters.replay_committed() == 8


def test_replay_window_in_the_future_replays_nothing(letters: Letters, cdp_sandbox: Any) -> None:
    result = letters.replay("--since", "2999-01-01T00:00:00")
    assert result.returncode == 0, result.stdout + result.stderr
    assert cdp_sandbox.events() == []
    assert "filtered out        8" in result.stdout


def test_replay_stops_on_refused_credentials_and_commits_nothing(
    letters: Letters, cdp_sandbox: Any
) -> None:
    cdp_sandbox.set_faults(auth_fail=True)
    result = letters.replay("--filter", "\"cdp.errors.stage\" == 'deliver'")
    assert result.returncode == 1
    assert "STOPPED" in result.stdout
    # The first record is unfinished: the offset does not move (the commit's metadata
    # names the filtered-out dead letters after it finished; none was delivered).
    assert letters.replay_committed() == 0
    assert len(read_topic(letters.bootstrap, letters.dlq, 8)) == 8  # nothing written back

    cdp_sandbox.clear_faults()
    assert letters.replay("--filter", "\"cdp.errors.stage\" == 'deliver'").returncode == 0
    assert len(cdp_sandbox.events()) == 6


def test_replay_without_the_dead_letter_topic_fails(
    tmp_path: Path, letters: Letters, unique: str
) -> None:
    text = letters.config_path.read_text().replace(letters.dlq, f"missing-{unique}")
    path = tmp_path / "missing.yaml"
    path.write_text(text)
    result = run_cli("replay-dlq", "--config", str(path), env=letters.env)
    assert result.returncode == 1
    assert "missing-" in result.stderr
