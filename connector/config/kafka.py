"""The Kafka side: the broker connection, the topics read, the schema registry.

``KafkaSettings`` builds the librdkafka settings of each kind of client, so none is
handed a key it ignores.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from connector.config.base import ENV_NAME, Section, read_secret
from connector.config.librdkafka_keys import CONSUMER_ONLY, OWNED_KEYS, PRODUCER_ONLY
from connector.errors import ConfigError

__all__ = ["KafkaSettings", "RegistrySettings", "TopicSettings"]


# Settings of every client the connector defaults (``kafka.client`` overrides them):
# - ``reconnect.backoff.max.ms`` 1000 (librdkafka's default 10000; the Java client's
#   1000): toward a node that is down librdkafka doubles the wait between connection
#   attempts up to this. A node back from a restart soon leads partitions or
#   coordinates the group again (in a rolling restart it takes over leaderships when
#   the next node stops), and nothing reaches it before the next attempt: with 10 s,
#   "Delaying next reconnect by 7642ms" was logged for a node 2 s after it was killed.
#   With 1 s a down node costs each client one refused connection per second.
CLIENT_DEFAULTS: dict[str, str | int] = {
    "reconnect.backoff.max.ms": 1000,
}

# Consumer settings the connector defaults (``kafka.client`` overrides them):
# - a group without a committed offset reads a partition from its beginning;
# - librdkafka postpones a partition's next fetch by ``fetch.queue.backoff.ms`` (1000
#   ms by default) once its local queue passed a threshold; the pause at
#   ``max_buffered_records`` and the resume at half hit that, and delivery then stood
#   still up to a second per cycle (sitecore path, 100k records: 13,971 -> 16,265
#   events/s with 10 ms, no more stalls, CPU per event unchanged).
# - ``fetch.wait.max.ms`` 100 (librdkafka: 500): how long a broker holds a fetch with
#   nothing new. A broker answers one connection's requests in order, so after a
#   leader change the offset check librdkafka sends the new leader first
#   (OffsetForLeaderEpoch) waits behind the fetch already held there: measured 0.45 s
#   of the 0.52 s between the consumer learning a partition's new leader and fetching
#   from it. An idle consumer sends a fetch per broker every 0.1 s instead of 0.5 s.
CONSUMER_DEFAULTS: dict[str, str | int] = {
    "auto.offset.reset": "earliest",
    "fetch.queue.backoff.ms": 10,
    "fetch.wait.max.ms": 100,
}


class KafkaSettings(Section):
    """The broker connection; ``*_conf()`` build each kind of client's librdkafka settings."""

    bootstrap_servers: str = Field(
        "127.0.0.1:9092", min_length=1, description="brokers, `host:port[,host:port...]`"
    )
    group_id: str = Field(
        "cdp-connector",
        min_length=1,
        description="consumer group; replicas with the same id share the partitions",
    )
    group_instance_id_env: str | None = Field(
        None,
        pattern=ENV_NAME,
        description="environment variable holding this replica's `group.instance.id` "
        "(static membership: a restart within `session.timeout.ms` keeps the partitions, "
        "no rebalance); each replica needs its own value, so the Helm chart sets it from the "
        "pod name (`staticMembership.enabled`). Unset: dynamic membership",
    )
    client: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="extra librdkafka settings, e.g. `security.protocol: SASL_SSL`, "
        "`sasl.mechanism: SCRAM-SHA-512`, `sasl.username`, `ssl.ca.location`, "
        "`session.timeout.ms`. Consumer-only keys go to the consumers only, producer-only "
        "keys to the producers only (librdkafka's own table), the rest to every client. "
        "`auto.offset.reset` defaults to `earliest` (a group without committed offsets "
        "reads from the start; `latest` skips the backlog), `fetch.queue.backoff.ms` to "
        "10 (librdkafka's 1000 stalled fetching up to a second after each resume), "
        "`fetch.wait.max.ms` to 100 and `reconnect.backoff.max.ms` to 1000 (a partition "
        "resumes sooner after a broker failover; docs/operations.md). Never a password",
    )
    sasl_password_env: str | None = Field(
        "KAFKA_SASL_PASSWORD",
        pattern=ENV_NAME,
        description="environment variable holding the SASL password",
    )
    sasl_password_file: Path | None = Field(
        None, description="mounted file holding the SASL password (wins over the variable)"
    )
    commit_interval_seconds: float = Field(
        1.0, gt=0, le=60, description="period of the asynchronous commit of finished offsets"
    )
    poll_batch: int = Field(
        64,
        ge=1,
        le=100_000,
        description="records per `consume()` call and per hand-over to the dispatcher (never "
        "more than the room left under `delivery.max_buffered_records`); the consumer thread "
        "maps one such step while the event loop waits for the interpreter lock, so larger "
        "steps stall delivery for longer",
    )
    poll_wait_seconds: float = Field(
        0.005,
        gt=0,
        le=1,
        description="longest wait of one `consume()` call. librdkafka returns a batch "
        "when it holds `poll_batch` records or this time passed, so below capacity each "
        "record waits up to this long before it is handed over (0.1 made a median of 80 ms "
        "at 1,000 records/s); on a backlog batches fill at once. Idle, the loop wakes this "
        "often",
    )

    @field_validator("client")
    @classmethod
    def _no_secrets_or_owned_keys(cls, client: dict[str, Any]) -> dict[str, Any]:
        for key in client:
            if "password" in key or key.endswith(".secret"):
                raise ValueError(
                    f"{key}: secrets are not taken from the file; "
                    "use sasl_password_env or sasl_password_file"
                )
            if key in OWNED_KEYS:
                raise ValueError(f"{key}: set by the connector; use {OWNED_KEYS[key]} instead")
        return client

    def admin_conf(self) -> dict[str, Any]:
        """Settings every client understands (AdminClient uses only these), secrets included.

        librdkafka's log lines go through ``logging`` (JSON in containers), not raw stderr.
        """
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "logger": logging.getLogger("librdkafka"),
            **CLIENT_DEFAULTS,
            **{k: v for k, v in self.client.items() if k not in CONSUMER_ONLY | PRODUCER_ONLY},
        }
        password = read_secret(self.sasl_password_env, self.sasl_password_file, "kafka")
        if password is not None and "sasl.mechanism" in conf:
            conf["sasl.password"] = password.get_secret_value()
        return conf

    def consumer_conf(self) -> dict[str, Any]:
        """A consumer's settings: ``admin_conf()`` plus the consumer-only ``client`` keys."""
        conf = {**self.admin_conf(), **CONSUMER_DEFAULTS}
        return conf | {k: v for k, v in self.client.items() if k in CONSUMER_ONLY}

    def producer_conf(self) -> dict[str, Any]:
        """A producer's settings: ``admin_conf()`` plus the producer-only ``client`` keys."""
        return self.admin_conf() | {k: v for k, v in self.client.items() if k in PRODUCER_ONLY}

    def member_conf(self) -> dict[str, Any]:
        """``group.id``, and ``group.instance.id`` when static membership is configured.

        Only for the consumer of ``run`` (the one group member per replica); raises
        ConfigError when the named environment variable is unset or empty.
        """
        conf: dict[str, Any] = {"group.id": self.group_id}
        if self.group_instance_id_env:
            value = os.environ.get(self.group_instance_id_env, "").strip()
            if not value:
                raise ConfigError(
                    f"kafka.group_instance_id_env: environment variable "
                    f"{self.group_instance_id_env} is not set (each replica needs its own "
                    "value, e.g. the pod name); set it or remove group_instance_id_env"
                )
            conf["group.instance.id"] = value
        return conf


class TopicSettings(Section):
    """One subscribed topic (a name or a pattern) and how its values are decoded."""

    name: str | None = Field(
        None, min_length=1, description="the topic's name (give `name` or `pattern`)"
    )
    pattern: str | None = Field(
        None,
        min_length=1,
        description="a regex: every matching topic is subscribed (librdkafka `^...`)",
    )
    decoder: Literal["confluent", "schemaless"] = Field(
        "confluent",
        description="`confluent`: Confluent wire format, schemas from the registry; "
        "`schemaless`: plain Avro with the writer schema in `schema`",
    )
    schema_path: Path | None = Field(
        None, alias="schema", description="writer schema `.avsc` for `schemaless` topics"
    )
    reader_schema: Path | None = Field(
        None, description="reader schema `.avsc` for schema evolution"
    )
    subject: str | None = Field(
        None,
        min_length=1,
        description="registry subject whose latest schema the mapping's record paths are "
        "checked against at start (default: <name>-value, TopicNameStrategy)",
    )

    @model_validator(mode="after")
    def _one_of_name_or_pattern(self) -> TopicSettings:
        if (self.name is None) == (self.pattern is None):
            raise ValueError("give exactly one of 'name' or 'pattern'")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regex: {exc}") from exc
        if self.decoder == "schemaless" and self.schema_path is None:
            raise ValueError("decoder 'schemaless' needs 'schema' (the writer .avsc)")
        return self

    @property
    def subscription(self) -> str:
        """What to pass to subscribe(): the name, or the pattern with librdkafka's '^'."""
        if self.pattern is None:
            return str(self.name)
        return self.pattern if self.pattern.startswith("^") else f"^{self.pattern}"

    def matches(self, topic: str) -> bool:
        """Whether ``topic`` is this entry's name, or matches its pattern (whole name)."""
        if self.pattern is None:
            return topic == self.name
        return re.fullmatch(self.pattern.lstrip("^"), topic) is not None


class RegistrySettings(Section):
    """The schema registry ``confluent`` topics are decoded with (``decode.registry``)."""

    url: str = Field(
        ...,
        pattern=r"^https?://",
        description="Confluent-compatible registry base URL (Confluent, Apicurio "
        "`/apis/ccompat/v7`, Karapace, Redpanda); the section is required for `confluent` "
        "topics",
    )
    username_env: str | None = Field(
        None, pattern=ENV_NAME, description="environment variable holding the HTTP Basic user"
    )
    password_env: str | None = Field(
        None, pattern=ENV_NAME, description="environment variable holding the HTTP Basic password"
    )
    timeout_seconds: float = Field(
        5.0, gt=0, description="per request; unreachable or 5xx pauses consumption and retries"
    )

    def basic_auth(self) -> tuple[str, str] | None:
        """(user, password) when both are configured, for HTTP Basic auth."""
        user = read_secret(self.username_env, None, "schema_registry.username")
        password = read_secret(self.password_env, None, "schema_registry.password")
        if user is None or password is None:
            return None
        return user.get_secret_value(), password.get_secret_value()
