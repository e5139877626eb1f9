"""Topics the connector writes to (dead letters, browser ids): there at start, or created.

One function for both, so ``run``, ``check`` and the browser-id store decide the same
way: a topic that exists is used as it is; a missing one is created when its section
allows it, and otherwise, or when the broker refuses, it is a ConfigError (exit 2).
"""

from __future__ import annotations

import logging
from concurrent.futures import TimeoutError as FutureTimeout

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from connector.config import KafkaSettings
from connector.errors import ConfigError, TransientError

__all__ = ["ensure_topic"]

log = logging.getLogger(__name__)


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
    missing and may not or cannot be created, TransientError when the broker does not
    answer within ``timeout``. Lists every topic instead of asking for this one, so a
    broker that auto-creates topics on a metadata request does not.
    """
    name = new.topic
    admin = AdminClient(kafka.admin_conf())
    try:
        meta = admin.list_topics(timeout=timeout).topics.get(name)
    except KafkaException as exc:
        raise TransientError(
            f"no metadata from {kafka.bootstrap_servers} in {timeout:g}s: {_reason(exc)}"
        ) from exc
    if meta is not None:
        return f"{len(meta.partitions)} partition(s)"
    if not create:
        raise ConfigError(
            f"{section}.topic {name!r} does not exist and {section}.create_topic is false: "
            "create the topic, or set create_topic: true"
        )
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


def _reason(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else None
    return error.str() if isinstance(error, KafkaError) else str(exc)
