"""What the connector makes of the Kafka client's errors: stop, not ready, or a warning.

Both the consumer's ``error_cb`` and the errors ``consume`` hands over in place of
messages come here; ``run``'s source and ``replay-dlq``'s reader share it. Lines go
through ``kafka_log``, whose repeats (and librdkafka's own line for the same error)
collapse into one line per interval (``connector.logs``).
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaError

from connector.kafka.commits import fenced_reason
from connector.logs import KAFKA_LOGGER
from connector.run_state import RunState

__all__ = ["client_error", "kafka_log", "message_error"]

kafka_log = logging.getLogger(KAFKA_LOGGER)


def client_error(state: RunState, err: KafkaError) -> None:
    """The consumer's ``error_cb`` (and a fatal error ``consume`` raised): brokers
    down → not ready; fatal → stop.

    Logged through ``kafka_log``, whose repeats (and librdkafka's own line for the same
    error) collapse into one line per interval."""
    if err.code() == KafkaError._ALL_BROKERS_DOWN:
        if state.broker_down_since is None:
            state.broker_down_since = time.monotonic()
        kafka_log.error("all Kafka brokers are down: %s", err.str())
    elif _fatal(err):
        state.fail(_fatal_reason(err, "Kafka client fatal error"))
    elif err.code() == KafkaError._AUTHENTICATION:
        # librdkafka retries a refused SASL login forever; no retry can fix a password.
        state.fail(f"Kafka refused the credentials (kafka.client sasl.*): {err.str()}")
    else:
        kafka_log.warning("Kafka client error: %s", err.str())


def message_error(state: RunState, err: KafkaError) -> None:
    """An error ``consume`` handed over in place of a message."""
    if err.code() == KafkaError._PARTITION_EOF:
        return
    if _fatal(err):
        state.fail(_fatal_reason(err, "Kafka consumer fatal error"))
    else:
        kafka_log.warning("Kafka consumer error: %s", err.str())


def _fatal(err: KafkaError) -> bool:
    # A fatal error reaches consume() as a message error coded _FATAL, not flagged fatal.
    return bool(err.fatal()) or err.code() in (KafkaError._FATAL, KafkaError.FENCED_INSTANCE_ID)


def _fatal_reason(err: KafkaError, what: str) -> str:
    # Under _FATAL only the text names the cause (librdkafka's FENCED_INSTANCE_ID text).
    if err.code() == KafkaError.FENCED_INSTANCE_ID or "group.instance.id" in err.str():
        return fenced_reason(err)
    return f"{what}: {err.str()}"
