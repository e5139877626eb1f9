"""Which librdkafka properties each kind of client understands, and which the connector owns.

librdkafka prints a CONFWARN line at every start when a client is handed a property of
the other kind (a consumer-only key on a producer); ``KafkaSettings`` routes
``kafka.client`` keys by these tables. tests/unit/config/test_kafka_client_conf.py holds them
against the librdkafka the connector ships with.
"""

from __future__ import annotations

__all__ = ["CONSUMER_ONLY", "OWNED_KEYS", "PRODUCER_ONLY"]


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Which librdkafka properties belong to one kind of client (librdkafka CONFIGURATION.md,
# C/P column, v2.15): handed to any other kind, they print a CONFWARN line at every start.
CONSUMER_ONLY = _names(
    "auto.commit.enable auto.commit.interval.ms auto.offset.reset check.crcs "
    "consume.callback.max.messages coordinator.query.interval.ms enable.auto.commit "
    "enable.auto.offset.store enable.partition.eof fetch.error.backoff.ms fetch.max.bytes "
    "fetch.message.max.bytes fetch.min.bytes fetch.queue.backoff.ms fetch.wait.max.ms "
    "group.id group.instance.id group.protocol group.protocol.type group.remote.assignor "
    "heartbeat.interval.ms isolation.level max.partition.fetch.bytes max.poll.interval.ms "
    "max.poll.records offset.store.method offset.store.path offset.store.sync.interval.ms "
    "partition.assignment.strategy queued.max.messages.kbytes queued.min.messages "
    "session.timeout.ms share.acknowledgement.mode"
)
PRODUCER_ONLY = _names(
    "acks batch.num.messages batch.size compression.codec compression.level "
    "compression.type delivery.report.only.error delivery.timeout.ms "
    "enable.gapless.guarantee enable.idempotence linger.ms message.send.max.retries "
    "message.timeout.ms partitioner produce.offset.report "
    "queue.buffering.backpressure.threshold queue.buffering.max.kbytes "
    "queue.buffering.max.messages queue.buffering.max.ms queuing.strategy "
    "request.required.acks request.timeout.ms retries sticky.partitioning.linger.ms "
    "transaction.timeout.ms transactional.id"
)
# Set by the connector itself (a value from kafka.client would be overridden or break a
# guarantee): the key, and what to use instead.
OWNED_KEYS = {
    "bootstrap.servers": "kafka.bootstrap_servers",
    "metadata.broker.list": "kafka.bootstrap_servers",
    "group.id": "kafka.group_id",
    "group.instance.id": "kafka.group_instance_id_env (static membership)",
    "enable.auto.commit": "nothing: offsets are committed only after each record's outcome",
    "enable.auto.offset.store": "nothing: offsets are committed only after each record's outcome",
    "partition.assignment.strategy": "nothing: the group uses cooperative-sticky",
    "acks": "nothing: dead letters and browser ids are written with acks=all",
    "enable.idempotence": "nothing: dead letters and browser ids are written idempotently",
}
