"""The drain's commits: a static member asks the coordinator every ~100 ms whether it
still owns its partitions, and a fence found that way ends the drain at once."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaTP

from connector.kafka.commits import Committer, commit_metadata
from connector.offsets.tracker import OffsetTracker
from connector.run_state import RunState
from connector.source.drain import DrainCommits
from connector.source.handoff import Handoff
from tests.unit.fake_kafka import FakeConsumer
from tests.unit.source.test_source import P0, Rig
from tests.unit.source.test_source_drain import Loop, StuckDispatcher, loop, timed

__all__ = ["loop"]  # the fixture, used by name


def committer() -> tuple[OffsetTracker, RunState, Committer]:
    tracker = OffsetTracker()
    state = RunState()
    tracker.assign(P0, 5, ())
    return tracker, state, Committer(tracker, state, commit_metadata("test"))


def fence(consumer: FakeConsumer) -> None:
    def refused(*, offsets: list[KafkaTP], asynchronous: bool) -> None:
        raise KafkaException(KafkaError(KafkaError.FENCED_INSTANCE_ID, "fenced"))

    consumer.commit = refused  # type: ignore[method-assign]


def test_the_drain_commits_unchanged_offsets_again_once_per_period() -> None:
    _, state, commits = committer()
    consumer = FakeConsumer({})
    drain = DrainCommits(commits, state, period=0.05)
    drain.due(consumer)  # at once: the first question goes out when the drain starts
    drain.due(consumer)  # within the period: nothing
    assert consumer.commits == [({P0: 5}, False)]
    time.sleep(0.06)
    drain.due(consumer)
    assert consumer.commits == [({P0: 5}, False), ({P0: 5}, False)]  # nothing moved: again


def test_a_commit_refused_as_fenced_fails_the_run() -> None:
    _, state, commits = committer()
    consumer = FakeConsumer({})
    fence(consumer)
    DrainCommits(commits, state).due(consumer)
    assert state.fatal_exit is not None
    assert state.fatal_exit.startswith("fenced: another consumer joined the group")


def test_an_async_commit_answered_fenced_fails_the_run() -> None:
    _, state, commits = committer()
    commits.on_committed(KafkaError(KafkaError.FENCED_INSTANCE_ID, "fenced"), [KafkaTP("t", 0)])
    assert state.fatal_exit is not None
    assert "fenced" in state.fatal_exit


def test_a_static_member_fenced_while_draining_cancels_its_requests_at_once(loop: Loop) -> None:
    stuck = StuckDispatcher()
    rig = Rig(handoff=lambda _t, _s: Handoff(stuck, loop.loop), drain=5.0)  # type: ignore[arg-type]
    rig.source._settings = replace(rig.source._settings, static_member=True)
    rig.kafka.assign(P0)
    rig.read(P0, range(3))
    rig.finish(P0, 0)
    asked: list[Any] = []
    original = rig.kafka.commit

    def commit(*, offsets: list[KafkaTP], asynchronous: bool) -> None:
        asked.append(time.monotonic())
        if len(asked) >= 3:  # the replacement joined: the third question is refused
            raise KafkaException(KafkaError(KafkaError.FENCED_INSTANCE_ID, "fenced"))
        original(offsets=offsets, asynchronous=asynchronous)

    rig.kafka.commit = commit  # type: ignore[method-assign]
    elapsed = timed(rig.source.shutdown)
    assert elapsed < 0.6  # heartbeats alone would tell only after seconds
    assert rig.state.fatal_exit is not None and "fenced" in rig.state.fatal_exit
    assert stuck.stopped  # the requests still open are cancelled
    assert rig.kafka.commits == [({P0: 1}, False), ({P0: 1}, False)]  # nothing after it
