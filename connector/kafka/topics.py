"""Topics on the cluster: the ones the connector writes to, and the ones it reads.

Topics it writes to (dead letters, browser ids) must be there at start, or be created.
One function for both (``ensure_topic``), so ``run``, ``check`` and the browser-id store
decide the same way: a topic that exists is used as it is; a missing one is created
when its section allows it, and otherwise, or when the broker refuses, it is a
ConfigError (exit 2). Topics it subscribes to by name may be missing for a while:
``check_subscribed`` says which, for readiness.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from connector.config import KafkaSettings, TopicSettings
from connector.errors import ConfigError, TransientError
from connector.run_state import RunState

__all__ = ["CredentialsRefused", "check_subscribed", "cluster_metadata", "ensure_topic"]

log = logging.getLogger(__name__)
source_log = logging.getLogger(
    "connector.source.kafka_source"
)  # the source's lines, as before the split

METADATA_TIMEOUT = 5.0  # seconds for the subscribed topics' lookup


class CredentialsRefused(ConfigError):
    """The broker refused the SASL login: librdkafka would retry it forever, unanswered."""


def cluster_metadata(
    kafka: KafkaSettings, timeout: float, logger: logging.Logger | None = None
) -> Any:  # ClusterMetadata (not exported by confluent-kafka)
    """The cluster's metadata, asked in one-second attempts so that a refused login is
    reported within a second or two (CredentialsRefused) instead of after ``timeout``;
    TransientError when the brokers do not answer in ``timeout``. ``logger`` takes
    librdkafka's own lines (``check`` passes one that is never shown)."""
    refused: list[str] = []

    def on_error(err: KafkaError) -> None:
        if err.code() == KafkaError._AUTHENTICATION:
            refused.append(err.str())

    conf = {**kafka.admin_conf(), "error_cb": on_error}
    if logger is not None:
        conf["logger"] = logger
    admin = AdminClient(conf)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return admin.list_topics(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
        except KafkaException as exc:
            admin.poll(0)  # serves error_cb
            if refused:
                raise CredentialsRefused(
                    f"Kafka refused the credentials (kafka.client sasl.*, the SASL password): "
                    f"{refused[0]}"
                ) from exc
            if time.monotonic() >= deadline:
                raise TransientError(
                    f"no metadata from {kafka.bootstrap_servers} in {timeout:g}s: {_reason(exc)}"
                ) from exc


def ensure_topic(
    kafka: KafkaSettings,
    new: NewTopic,
    *,
    create: bool,
    section: str,
    timeout: float,
    validate_only: bool = False,
) -> str:
    """Make sure topic ``new.topic`` exists, creating it as ``new`` says when ``create``.

    ``section`` is the config section that names the topic (``dead_letter``), for the
    messages. With ``validate_only`` (``check``) the broker validates the creation
    without doing it. Returns a one-line detail; raises ConfigError when the topic is
    missing and may not or cannot be created (CredentialsRefused when it refuses the
    login), TransientError when the broker does not answer within ``timeout``. Lists
    every topic instead of asking for this one, so a broker that auto-creates topics on
    a metadata request does not.
    """
    name = new.topic
    meta = cluster_metadata(kafka, timeout).topics.get(name)
    if meta is not None:
        return f"{len(meta.partitions)} partition(s)"
    if not create:
        raise ConfigError(
            f"{section}.topic {name!r} does not exist and {section}.create_topic is false: "
            "create the topic, or set create_topic: true"
        )
    admin = AdminClient(kafka.admin_conf())
    futures = admin.create_topics([new], validate_only=validate_only, request_timeout=timeout)
    try:
        futures[name].result(timeout)
    except FutureTimeout as exc:
        raise TransientError(f"creating {name!r}: no answer in {timeout:g}s") from exc
    except KafkaException as exc:
        if exc.args and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return "created meanwhile by another client"
        raise ConfigError(
            f"{section}.topic {name!r} does not exist and cannot be created: {_reason(exc)}"
        ) from exc
    if validate_only:
        return f"does not exist yet; run creates it ({new.num_partitions} partition(s))"
    log.info("created topic %s (%d partition(s)) for %s", name, new.num_partitions, section)
    return f"created ({new.num_partitions} partition(s))"


def check_subscribed(consumer: Consumer, topics: Sequence[TopicSettings], state: RunState) -> None:
    """Which subscribed topic names the cluster lacks (``RunState.missing_topics``).

    Called by ``KafkaSource`` on the consumer thread at subscribe and after each
    assignment (never inside a rebalance callback). Patterns are not looked up:
    matching nothing yet is what a pattern may do. A broker that does not answer leaves
    the last finding (brokers down is its own reason); nothing is raised."""
    names = [t.name for t in topics if t.name is not None]
    if not names:
        return
    try:
        found = consumer.list_topics(timeout=METADATA_TIMEOUT).topics
    except KafkaException as exc:
        source_log.warning("could not look up the subscribed topics: %s", exc)
        return
    missing = tuple(n for n in names if n not in found or found[n].error is not None)
    if missing != state.missing_topics:
        if missing:
            source_log.warning("subscribed topics missing, not read until created: %s",
                               ", ".join(missing))  # fmt: skip
        else:
            source_log.warning("subscribed topics found: %s", ", ".join(state.missing_topics))
    state.missing_topics = missing


def _reason(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)
