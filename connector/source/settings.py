"""What the readers (``run``'s consume loop, its shutdown drain, ``replay-dlq``'s reader)
read of the config: built once by the wiring place, so no reader takes the whole
``Settings``."""

from __future__ import annotations

from dataclasses import dataclass

from connector.config import Settings, TopicSettings

__all__ = ["SourceSettings"]


@dataclass(frozen=True, slots=True)
class SourceSettings:
    """The consume loop's limits and timings, from ``kafka``, ``delivery`` and ``shutdown``."""

    topics: tuple[TopicSettings, ...]  # what is subscribed to
    poll_batch: int  # records one consume call may return
    commit_interval: float  # seconds between periodic commits
    max_buffered_records: int  # records held before consumption pauses
    drain_timeout: float  # how long a release or the shutdown waits for requests in flight
    static_member: bool  # group.instance.id is set: leave the group only when told to

    @classmethod
    def of(cls, settings: Settings) -> SourceSettings:
        """The readers' view of ``settings``."""
        return cls(
            topics=tuple(settings.topics),
            poll_batch=settings.kafka.poll_batch,
            commit_interval=settings.kafka.commit_interval_seconds,
            max_buffered_records=settings.delivery.max_buffered_records,
            drain_timeout=settings.shutdown.drain_timeout_seconds,
            static_member=bool(settings.kafka.group_instance_id_env),
        )
