"""How records are delivered: concurrency, retry, the circuit breaker, dead letters."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from connector.config.base import Section

__all__ = [
    "CircuitSettings",
    "DeadLetterSettings",
    "DeliverySettings",
    "Ordering",
    "RetrySettings",
]

Ordering = Literal["key", "partition", "none"]  # what delivery posts one after another


class RetrySettings(Section):
    """How often and how long a retryable answer is retried (``delivery.dispatcher``)."""

    max_attempts: int = Field(
        8,
        ge=1,
        le=1000,
        description="attempts for a retryable answer (network, timeout, 408, 429, 5xx) before "
        "`on_retries_exhausted`",
    )
    initial_backoff_seconds: float = Field(
        0.2, gt=0, description="first wait; exponential backoff with jitter, doubled per attempt"
    )
    max_backoff_seconds: float = Field(
        30.0, gt=0, description="ceiling of one wait, also of an honoured `Retry-After`"
    )
    max_elapsed_seconds: float = Field(300.0, gt=0, description="total backoff budget per event")


class CircuitSettings(Section):
    """When the circuit opens and how long it stays open (``delivery.gate``)."""

    failure_threshold: int = Field(
        20,
        ge=1,
        description="consecutive retryable failures that open the circuit (all workers wait; "
        "no retries are spent)",
    )
    open_seconds: float = Field(1.0, gt=0, description="first wait before a probe")
    max_open_seconds: float = Field(
        5.0,
        gt=0,
        description="ceiling of the wait, which doubles while probes fail; delivery resumes "
        "at most this long after the CDP is back (a probe is one request)",
    )


class DeliverySettings(Section):
    """How records are posted: ordering, concurrency, memory bound, rate limit, retries,
    what exhausted retries do; read by the dispatcher, settle and the source."""

    ordering: Ordering = Field(
        "key",
        description="what is posted one after another, in offset order: `key` (records with "
        "the same guest key), `partition` (records of one partition), `none` (nothing: all "
        "concurrently)",
    )
    max_in_flight: int = Field(
        256, ge=1, le=10_000, description="concurrent requests (and HTTP connections)"
    )
    max_buffered_records: int = Field(
        20_000,
        ge=1,
        le=10_000_000,
        description="records held between poll and outcome; reaching it pauses the consumer",
    )
    max_run_ahead: int = Field(
        10_000,
        ge=1,
        le=10_000_000,
        description="how many offsets a partition may be read past its commit point before "
        "it is paused (also capped so its finished offsets fit the commit metadata)",
    )
    rate_limit_per_second: float | None = Field(
        None, gt=0, description="optional ceiling on events per second"
    )
    retry: RetrySettings = RetrySettings()
    circuit: CircuitSettings = CircuitSettings()
    on_retries_exhausted: Literal["dead_letter", "halt"] = Field(
        "dead_letter",
        description="`dead_letter` the record, or `halt` (stop delivering until restarted)",
    )
    auth_probe_seconds: float = Field(
        30.0, gt=0, description="how often a halted connector re-tries after 401/403"
    )


class DeadLetterSettings(Section):
    """The dead-letter topic; ``run`` verifies it at start
    (``connector.settle.deadletter.ensure_topic``)."""

    topic: str = Field(
        "clickstream.dlq",
        pattern=r"^[A-Za-z0-9._-]{1,249}$",  # Kafka's rule for topic names
        description="where failed records go, with headers saying where and why",
    )
    create_topic: bool = Field(
        True,
        description="`run` creates the topic at start when it is missing (as Kafka Connect "
        "does); `false`, or a broker that refuses (ACLs, replication factor), stops `run` "
        "with exit code 2 and says why. `check` asks the broker to validate the creation",
    )
    partitions: int = Field(1, ge=1, le=10_000, description="when creating the topic")
    replication_factor: int = Field(
        -1, ge=-1, description="when creating the topic; -1: the broker's default"
    )
