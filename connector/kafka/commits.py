"""Commits: the tracker's finished offsets handed to Kafka, the one commit path of
``run`` (the source thread) and ``replay-dlq`` (the dead-letter reader).

Each commit carries ``cdp-connector/<version> <instance>`` as its metadata and, when
records above the commit point already have an outcome, which ones
(``connector.offsets.metadata``), so the next owner counts them instead of posting
them. The metadata is encoded at commit time, never per record; ``read_back`` reads
the committed offsets and their metadata on assignment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaTP

from connector import __version__
from connector.offsets import metadata as offset_metadata
from connector.offsets.tracker import OffsetTracker, TopicPartition
from connector.run_state import RunState

__all__ = [
    "RETRY_PAUSES",
    "Committer",
    "commit_metadata",
    "committed_offsets",
    "fenced",
    "fenced_reason",
    "read_back",
]

log = logging.getLogger(__name__)

# ``committed`` answers a group coordinator that is moving or still loading (and a
# request that timed out) with an error a moment later would not give: asked again
# after these pauses, within the caller's timeout.
RETRIABLE = frozenset(
    (
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError._TIMED_OUT,
    )
)
RETRY_PAUSES = (0.1, 0.25, 0.5)


def commit_metadata(instance: str) -> str:
    """The start of every commit's metadata: which build and replica committed."""
    return f"cdp-connector/{__version__} {instance}"


class Committer:
    """Commits the tracker's finished offsets, with the finished set above each commit
    point in the metadata; the one commit path of ``run`` and ``replay-dlq``.
    ``on_committed`` is the consumer's ``on_commit`` callback."""

    def __init__(
        self,
        tracker: OffsetTracker,
        state: RunState,
        metadata: str,
        on_commit: Callable[[bool], None] | None = None,
    ) -> None:
        self._tracker = tracker
        self._state = state
        self._prefix = metadata
        self._on_commit = on_commit or (lambda _ok: None)
        self.last: dict[TopicPartition, int] = {}  # what was handed to Kafka, for summaries

    def commit(
        self,
        consumer: Consumer,
        *,
        asynchronous: bool,
        tps: list[TopicPartition] | None = None,
        again: bool = False,
    ) -> None:
        """Commit what moved (of ``tps``, all if None; ``again``: unchanged ones too, to
        ask the coordinator whether this member still owns them); nothing after a fatal
        failure. A commit refused because another member took this group.instance.id
        fails the run (``RunState.fail``) at once.

        The metadata is encoded here, at commit time, never per record."""
        states = self._tracker.to_commit(tps, unchanged=again)
        if not states or self._state.fatal_exit is not None:
            return  # a fatal failure (DLQ write failed, fenced): nothing past it is committed
        kafka_offsets = [
            KafkaTP(t, p, s.offset,
                    metadata=offset_metadata.encode(self._prefix, s.offset, s.finished).text)
            for (t, p), s in states.items()
        ]  # fmt: skip
        try:
            if asynchronous:  # two calls: the stubs type each form on its own
                consumer.commit(offsets=kafka_offsets, asynchronous=True)
            else:
                consumer.commit(offsets=kafka_offsets, asynchronous=False)
        except KafkaException as exc:
            # on_committed counts and logs it (librdkafka reports sync commits there too);
            # not marked committed, so these offsets are offered again.
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and fenced(err):
                self._state.fail(fenced_reason(err))
            return
        self._tracker.mark_committed(states)
        self.last.update({tp: s.offset for tp, s in states.items()})

    def on_committed(self, err: KafkaError | None, partitions: list[KafkaTP]) -> None:
        """The broker's answer to a commit, sync or async (served inside ``consume``)."""
        if err is not None and err.code() == KafkaError._NO_OFFSET:
            return  # nothing to commit: not a commit at all
        if err is not None and fenced(err):
            self._state.fail(fenced_reason(err))  # an async commit learnt it first
        failed = err is not None or any(p.error is not None for p in partitions)
        self._on_commit(not failed)
        if failed:
            # Offer these partitions' commit points again with the next commit.
            self._tracker.forget_committed([(str(p.topic), int(p.partition)) for p in partitions])
            log.warning("offset commit failed: %s", err or [str(p.error) for p in partitions])


def fenced(err: KafkaError) -> bool:
    """Whether ``err`` says another member joined with this group.instance.id (under
    ``_FATAL`` only librdkafka's text names the cause)."""
    return err.code() == KafkaError.FENCED_INSTANCE_ID or (
        err.code() == KafkaError._FATAL and "group.instance.id" in err.str()
    )


def fenced_reason(err: KafkaError) -> str:
    """The ``RunState.fail`` message for a fenced static member (see ``fenced``)."""
    return (
        "fenced: another consumer joined the group with this group.instance.id "
        "(kafka.group_instance_id_env) and owns the partitions now; stopped posting "
        f"at once, nothing more is committed ({err.str()})"
    )


def read_back(
    consumer: Consumer, partitions: list[KafkaTP], timeout: float
) -> dict[TopicPartition, tuple[int, tuple[int, ...]]]:
    """The group's committed offset of each partition and the finished offsets above it
    that its metadata names, for ``OffsetTracker.assign``. Called on assignment, inside
    the rebalance callback: it blocks up to ``timeout``. What cannot be read is a
    warning and missing from the answer (those records are posted again)."""
    names = ", ".join(f"{p.topic}[{p.partition}]" for p in partitions)
    try:
        wanted = [KafkaTP(p.topic, p.partition) for p in partitions]
        answer = committed_offsets(consumer, wanted, timeout)
    except KafkaException as exc:
        log.warning("could not read the committed offsets of %s (%s); records finished "
                    "before may be posted again", names, exc)  # fmt: skip
        return {}
    found: dict[TopicPartition, tuple[int, tuple[int, ...]]] = {}
    for p in answer:
        tp = (str(p.topic), int(p.partition))
        if p.error is not None:
            log.warning("could not read the committed offset of %s[%d]: %s", *tp, p.error)
        elif p.offset >= 0:  # else no committed offset (OFFSET_INVALID)
            found[tp] = (p.offset, offset_metadata.decode(p.metadata, p.offset))
    return found


def committed_offsets(
    consumer: Consumer,
    partitions: list[KafkaTP],
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
) -> list[KafkaTP]:
    """``consumer.committed``, asked again (a few times, within ``timeout`` in all) when
    the coordinator is moving or loading or the request timed out; any other error, or
    the last one, is raised as ``committed`` raises it. Each attempt but the last gets
    half the time left, so a timed-out attempt leaves room for another."""
    deadline = time.monotonic() + timeout
    for pause in (*RETRY_PAUSES, None):
        left = deadline - time.monotonic()
        try:
            return consumer.committed(partitions, left if pause is None else left / 2)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            code = err.code() if isinstance(err, KafkaError) else None
            if pause is None or code not in RETRIABLE or deadline - time.monotonic() <= pause:
                raise
            log.info("reading the committed offsets again in %.2fs: %s", pause, err)
            sleep(pause)
    raise AssertionError("unreachable")  # the last attempt returns or raises
