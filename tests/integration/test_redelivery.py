"""Delivery when things move (issue 16): what is posted twice is bounded by what was in
flight, one process at a time posts for a guest, and a partly delivered record is
replayed only for what it lacks.

Black box: the connector runs as subprocesses against the session's broker, registry
and sandbox; every figure comes from the sandbox's accepted events (counted per record
by ``ext.eventId``) and its request log (start, end, guest of each request).

Scale (the issue measured 20,000 records over 2,000 guests, ``max_in_flight: 256``,
``max_buffered_records: 20,000``): here 4,000 records over 400 guests,
``max_in_flight: 64``, ``max_buffered_records: 4,000`` — the same ratios (10 records
per guest, the whole backlog may be buffered, more guests than requests in flight), so
a connector whose redelivery is bounded by what it buffered rather than what was in
flight crosses the bound here as it did there. The commit interval is 0.25 s, so the
"delivered since the last commit" term of the bound (≈ 160 events at 100 ms) stays
smaller than what a buffered-bound connector re-posts (one that ignores the finished
offsets re-posts about everything its previous life delivered: ~200-300 per kill here,
against bounds of ~130-250). The fast sandbox delivers 3,000-6,000 events/s, so its
kill test keeps the issue's 20,000 records. Killed processes restart with the same
``group.instance.id`` (a crash-looping pod keeps its name), so the partitions come back
at once instead of after the dead member's session; the read-back path is the same.
"""

from __future__ import annotations

import itertools
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Message

from tests.fixtures_sandbox import SPEC, start_sandbox, stop_sandbox
from tests.integration.connector_proc import ConnectorFactory, ConnectorProcess, wait_for
from tests.integration.ops_helpers import headers_of, run_cli, write_config
from tests.integration.redelivery_helpers import (
    Backlog,
    Delivered,
    delivered_by,
    duplicates,
    event_id,
    out_of_order,
    overlapping_guests,
    reposted_per_life,
    snapshot,
    start_replica,
    wait_accepted,
)
from tests.integration.streams import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MAX_IN_FLIGHT = 64
COMMIT_INTERVAL = 0.25
# The crash bound counts what was delivered in the last commit interval, but a
# commit covers what was finished when its snapshot was taken, and only once the broker
# applied it: the window is the interval plus the commit's round trip (a few ms here),
# and the event loop's lag between the sandbox writing an answer and the record counting
# as finished (tens of ms at 5,000 answers/s). The consume loop checks the due time
# between the records it settles, so a batch being decoded and mapped does not hold a
# commit back (it did: 0.1-0.4 s per 500 records on a busy machine, issue 24). 50 ms
# covers those; measured windows: 0.01-0.25 s.
COMMIT_SLACK = 0.05
WATCHED = ("records_buffered", "requests_in_flight", "paused", "assigned_partitions")
POD = "POD_NAME"  # the variable kafka.group_instance_id_env names (the chart: the pod name)


def delivery(**extra: Any) -> dict[str, Any]:
    return {"max_in_flight": MAX_IN_FLIGHT, "max_buffered_records": 4000} | extra


def kafka_section(backlog: Backlog, **extra: Any) -> dict[str, Any]:
    # A member that stops without leaving holds its partitions until its session ends.
    client = {"session.timeout.ms": 6000, **extra.pop("client", {})}
    return {"group_id": backlog.group, "commit_interval_seconds": COMMIT_INTERVAL,
            "client": client, **extra}  # fmt: skip


# -- kill -9 --------------------------------------------------------------------------------


# Each life is killed this many seconds after its first delivery: at every age, from
# the first answer (before any commit could cover it) through the first commit interval
# to several; the first life, killed while it still reads the whole backlog (its
# consumer thread busiest), the next right after its first answer.
KILL_AGES = {100: (0.75, 0.0, 1.2, 0.15, 0.45), 0: (0.5, 0.0, 0.8, 0.1, 0.3)}


@pytest.mark.parametrize(
    ("latency_ms", "records"), [(100, 4000), (0, 20000)], ids=["sandbox-100ms", "sandbox-fast"]
)
def test_kill_9_reposts_at_most_in_flight_plus_the_last_commit_interval(
    bootstrap: str, schema_registry: Any, unique: str,
    connector_factory: ConnectorFactory, cdp_sandbox: Any,
    latency_ms: int, records: int,
) -> None:  # fmt: skip
    """Five kill -9, each life at another age (``KILL_AGES`` seconds after its first
    delivery: 0, within the first commit interval, several intervals): nothing is lost,
    and of what each killed life delivered, later lives re-post at most
    ``max_in_flight`` plus what was delivered in the last commit interval before the kill
    (from the sandbox's answer times; a re-posted record counts against the last life
    that delivered it, as the next life may be killed before it reads that partition),
    widened by ``COMMIT_SLACK`` (50 ms) for the commit's round trip and the loop: the
    issue states the bound without them, and no at-least-once committer can meet it
    exactly (a commit covers what finished when its snapshot was taken, once the broker
    applied it). That corrects the bound; it does not loosen it: a connector that
    ignores the finished offsets re-posts far more. The fast sandbox delivers several
    thousand events a second, so its backlog is the issue's 20,000.

    Catches: assignment that ignores the finished offsets in the commit metadata, a
    commit point held back by the slowest lane (round-robin lanes), commits only on
    revoke/shutdown, a periodic commit held back behind a batch being settled (a young
    process reading its backlog on a busy machine: issue 24), or offsets committed
    before delivery (a loss)."""
    backlog = Backlog(
        bootstrap, schema_registry.url, unique, records=records, guests=records // 10, seed=161
    )
    # Restarted with the same instance id, as a crash-looping pod is: the partitions come
    # back at once instead of after the dead member's session, the read-back is the same.
    config = backlog.config(
        connector_factory, cdp_sandbox.url,
        kafka=kafka_section(backlog, group_instance_id_env=POD),
        delivery=delivery(max_buffered_records=records),
    )  # fmt: skip
    lives: list[Delivered] = []
    kill_times: list[float] = []
    state: list[dict[str, float]] = []  # the victim's gauges just before its kill
    launched: list[float] = []
    for life, age in enumerate(KILL_AGES[latency_ms]):
        cdp_sandbox.reset()
        cdp_sandbox.set_faults(latency_ms=latency_ms)
        launched.append(time.time())
        victim = start_replica(connector_factory, config, f"life{life}", env={POD: "pod-0"})
        wait_accepted(cdp_sandbox, 1)  # this life delivers
        time.sleep(age)
        state.append({m: victim.metric(f"cdp_connector_{m}") for m in WATCHED})
        kill_times.append(time.time())
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)
        lives.append(snapshot(cdp_sandbox))
        so_far = {i for d in lives for i in d.ids()}
        assert len(so_far) < len(backlog.ids), "the backlog ended before a kill: make it longer"
    cdp_sandbox.reset()
    cdp_sandbox.set_faults(latency_ms=latency_ms)
    launched.append(time.time())
    start_replica(connector_factory, config, "last", env={POD: "pod-0"})
    backlog.caught_up()
    lives.append(snapshot(cdp_sandbox))
    for life, at in zip(lives, launched, strict=True):
        answered = sorted(r["end"] for r in life.requests if r["status"] == "201")
        first, last = answered[0] - at, answered[-1] - at
        rate = len(answered) / max(last - first, 1e-3)
        gap = max((b - a for a, b in itertools.pairwise(answered)), default=0.0)
        print(
            f"life launched +{at - launched[0]:.1f} s: first delivery after {first:.1f} s, "
            f"{len(answered)} delivered until {last:.1f} s ({rate:.0f}/s), longest pause "
            f"between answers {gap:.2f} s"
        )

    arrived = Counter(i for d in lives for i in d.ids())
    assert set(backlog.ids) - set(arrived) == set(), "records lost"
    figures = []
    reposted_of = reposted_per_life(lives)
    for kill, at in enumerate(kill_times):
        reposted = reposted_of[kill]
        recent = lives[kill].accepted_between(at - COMMIT_INTERVAL - COMMIT_SLACK, at)
        # For the report: how far back the re-posted finished records reach.
        window = next((w / 100 for w in range(0, 501)
                       if lives[kill].accepted_between(at - w / 100, at)
                       >= reposted - MAX_IN_FLIGHT), None)  # fmt: skip
        statuses = Counter(r["status"] for r in lives[kill].requests)
        figures.append({
            "reposted": reposted, "bound": MAX_IN_FLIGHT + recent, "window_s": window,
            "delivered_in_life": len(lives[kill].events), "requests": dict(statuses),
            **state[kill],
        })  # fmt: skip
    print(f"kill -9, sandbox {latency_ms} ms: {figures}; "
          f"total duplicates {duplicates(arrived.elements())}")  # fmt: skip
    assert all(f["reposted"] <= f["bound"] for f in figures), figures


def test_a_process_killed_every_5_s_still_finishes_the_backlog(
    bootstrap: str, schema_registry: Any, unique: str,
    connector_factory: ConnectorFactory, cdp_sandbox: Any,
) -> None:  # fmt: skip
    """A crash loop: each process is killed 5 s after it owned its partitions; the commit
    point still moves on, so the backlog is finished within a bounded number of lives.
    (Counted from the assignment, not the launch: a cold machine's start-up, imports and
    first fetch, took 2-15 s under load, which left a life launched 5 s before its kill
    no time to deliver, and the bound would have measured the machine.)

    Catches: finished offsets not carried in the commit (each life re-posts what the
    previous one delivered behind a slow lane), or no periodic commit at all."""
    backlog = Backlog(bootstrap, schema_registry.url, unique, records=6000, guests=600, seed=162)
    config = backlog.config(
        connector_factory, cdp_sandbox.url,
        kafka=kafka_section(backlog, group_instance_id_env=POD),
        delivery=delivery(max_buffered_records=6000),
    )  # fmt: skip
    cdp_sandbox.set_faults(latency_ms=100)
    # One life posts at most 5 s x 640 events (64 in flight, 100 ms): the backlog needs ≥ 2.
    max_lives = 10
    lives = 0
    while not backlog.is_caught_up():
        assert lives < max_lives, f"backlog not finished after {lives} lives of 5 s"
        victim = start_replica(connector_factory, config, f"life{lives}", env={POD: "pod-0"})
        owned_at = time.monotonic()  # start_replica returns once it owns partitions
        lives += 1
        while time.monotonic() - owned_at < 5 and not backlog.is_caught_up():
            time.sleep(0.25)
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(10)

    arrived = Counter(snapshot(cdp_sandbox).ids())
    print(f"crash loop: finished in {lives} lives; {duplicates(arrived.elements())} duplicates")
    assert set(backlog.ids) - set(arrived) == set(), "records lost"
    assert lives >= 2, "the backlog ended within one life: make it longer"


# -- replicas coming and going --------------------------------------------------------------


def exit_time(connector: ConnectorProcess) -> Callable[[], float]:
    """Starts watching ``connector``; the returned function gives when it exited
    (``time.monotonic()``), waiting for the exit if need be."""
    exited: list[float] = []

    def watch() -> None:
        connector.proc.wait()
        exited.append(time.monotonic())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()

    def when() -> float:
        watcher.join(60)
        return exited[0]

    return when


def in_flight(connector: ConnectorProcess) -> float:
    return connector.metric("cdp_connector_requests_in_flight")


def owned(*replicas: ConnectorProcess) -> list[int]:
    return [r.assigned() for r in replicas]


def scale_out_and_in(
    backlog: Backlog, factory: ConnectorFactory, sandbox: Any, config: dict[str, Any],
    *, outage_seconds: float = 0.0,
) -> tuple[int, list[str]]:  # fmt: skip
    """1 → 3 replicas mid-backlog, then 3 → 1 (SIGTERM), each step optionally inside a
    sandbox outage; the partitions that moved, and what happened (for the report)."""
    notes = []
    first = factory.start(config, "first")
    wait_for(lambda: owned(first) == [backlog.partitions], 30, "the first replica owns all")
    wait_accepted(sandbox, 300)
    if outage_seconds:
        sandbox.set_faults(outage_seconds=outage_seconds)
    second = factory.start(config, "second", wait_assigned=False)
    third = factory.start(config, "third", wait_assigned=False)
    replicas = (first, second, third)

    def spread() -> bool:
        counts = owned(*replicas)
        return all(counts) and sum(counts) == backlog.partitions

    wait_for(spread, 60, "three replicas sharing the partitions")
    moved_out = sum(owned(second, third))
    notes.append(f"scale-out: {owned(*replicas)}")
    wait_for(lambda: delivered_by(second) > 0 and delivered_by(third) > 0, 60,
             "the new replicas to deliver")  # fmt: skip
    assert not backlog.is_caught_up(), "the backlog ended before the scale-in: make it longer"
    if outage_seconds:
        sandbox.set_faults(outage_seconds=outage_seconds)
    moved_in = sum(owned(second, third))
    for replica in (second, third):
        replica.proc.send_signal(signal.SIGTERM)
    for replica in (second, third):
        assert replica.proc.wait(30) == 0, replica.output()[-3000:]
    wait_for(lambda: owned(first) == [backlog.partitions], 30, "the partitions back on one")
    try:
        backlog.caught_up(60)
    except AssertionError as exc:
        gauges = {g: first.metric(f"cdp_connector_{g}") for g in (*WATCHED, "circuit_open")}
        raise AssertionError(f"{exc}; the remaining replica: {gauges}") from None
    notes.append(f"moved {moved_out} out, {moved_in} back")
    return moved_out + moved_in, notes


def check_one_owner_per_guest(backlog: Backlog, sandbox: Any, moved: int, notes: list[str]) -> None:
    seen = snapshot(sandbox)
    arrived = Counter(seen.ids())
    lost = set(backlog.ids) - set(arrived)
    repeated = duplicates(arrived.elements())
    backwards = out_of_order(seen.events, backlog.position)
    together = overlapping_guests(seen.requests)
    print(f"{'; '.join(notes)}; duplicates {repeated} (bound {MAX_IN_FLIGHT * moved}); "
          f"guests out of order {len(backwards)}; guests with two requests open "
          f"{len(together)} (sandbox: {sandbox.stats().get('guest_overlaps')})")  # fmt: skip
    assert lost == set(), f"{len(lost)} records lost"
    assert together == [], f"{len(together)} guests had two requests open at once"
    assert sandbox.overlapping_guests() == []
    assert backwards == [], f"{len(backwards)} guests got an older event after a newer one"
    assert repeated <= MAX_IN_FLIGHT * moved


def test_scale_out_and_in_keep_one_owner_per_guest(
    bootstrap: str, schema_registry: Any, unique: str,
    connector_factory: ConnectorFactory, cdp_sandbox: Any,
) -> None:  # fmt: skip
    """1 → 3 → 1 replicas mid-backlog: nothing lost, at most ``max_in_flight`` posted
    again per moved partition, per guest events in record order and never two requests
    of one guest open at once.

    Catches: the new owner not reading the finished offsets (re-posts what the old one
    delivered), a revoke that does not wait for requests in flight, or an old owner that
    starts attempts after the revoke (overlaps, older events after newer ones)."""
    backlog = Backlog(bootstrap, schema_registry.url, unique, records=8000, guests=800, seed=163)
    cdp_sandbox.set_faults(latency_ms=100)
    config = backlog.config(
        connector_factory, cdp_sandbox.url, kafka=kafka_section(backlog), delivery=delivery(),
        shutdown={"drain_timeout_seconds": 5},
    )  # fmt: skip
    moved, notes = scale_out_and_in(backlog, connector_factory, cdp_sandbox, config)
    check_one_owner_per_guest(backlog, cdp_sandbox, moved, notes)


def test_scale_out_and_in_during_an_outage_keep_one_owner_per_guest(
    bootstrap: str, schema_registry: Any, unique: str,
    connector_factory: ConnectorFactory, cdp_sandbox: Any,
) -> None:  # fmt: skip
    """The same, each step inside a 3 s sandbox outage (503): records that were being
    retried when their partition moved are posted by the new owner only, after it.

    Catches: retries (back-off, circuit wait) going on after the revoke — the old owner
    posts an older event after the new owner's newer ones — or a revoke that waits for
    parked records until the drain timeout."""
    backlog = Backlog(bootstrap, schema_registry.url, unique, records=8000, guests=800, seed=164)
    cdp_sandbox.set_faults(latency_ms=100)
    config = backlog.config(
        connector_factory, cdp_sandbox.url, kafka=kafka_section(backlog),
        delivery=delivery(retry={"initial_backoff_seconds": 0.1, "max_backoff_seconds": 1.0},
                          circuit={"open_seconds": 1.0, "max_open_seconds": 2.0}),
        shutdown={"drain_timeout_seconds": 5},
    )  # fmt: skip
    moved, notes = scale_out_and_in(
        backlog, connector_factory, cdp_sandbox, config, outage_seconds=3.0
    )
    assert cdp_sandbox.stats()["by_status"].get("503", 0) > 0  # the outage was seen
    check_one_owner_per_guest(backlog, cdp_sandbox, moved, notes)


def test_static_member_replaced_while_draining_never_posts_beside_its_replacement(
    bootstrap: str, schema_registry: Any, unique: str,
    connector_factory: ConnectorFactory, cdp_sandbox: Any,
) -> None:  # fmt: skip
    """Static membership, two replicas; one gets SIGTERM and, while it still waits for
    its 2-4 s requests, a replacement with the same instance id starts and takes its
    partitions at once: never two processes posting for one guest, nothing lost. (2-4 s
    requests: with exactly 2 s they move in waves, and a SIGTERM at a wave's end leaves
    no drain to overlap with.)

    Catches: a draining process that keeps posting after it was fenced (its consumer not
    polled during the drain), or a replacement re-posting what the old one finished."""
    backlog = Backlog(bootstrap, schema_registry.url, unique, records=3000, guests=1000, seed=165)
    cdp_sandbox.set_faults(latency_ms=2000, latency_jitter_ms=2000)
    config = backlog.config(
        connector_factory, cdp_sandbox.url,
        kafka=kafka_section(backlog, group_instance_id_env=POD), delivery=delivery(),
        shutdown={"drain_timeout_seconds": 5},
    )  # fmt: skip
    # The broker fences the old member when its replacement joins; librdkafka says so.
    a = start_replica(
        connector_factory, config, "a", env={POD: "replica-a"}, expect_errors=["fenced"]
    )
    b = start_replica(connector_factory, config, "b", env={POD: "replica-b"}, wait_assigned=False)
    wait_for(lambda: all(owned(a, b)) and sum(owned(a, b)) == 6, 60, "two replicas sharing")
    wait_for(lambda: all(in_flight(r) >= MAX_IN_FLIGHT // 2 for r in (a, b)), 30, "both posting")
    moved, a_in_flight = a.assigned(), in_flight(a)
    a.proc.send_signal(signal.SIGTERM)
    terminated = time.monotonic()
    a_exit = exit_time(a)
    # Its 2-4 s requests keep it draining: the replacement starts beside it.
    assert a.proc.poll() is None, "the old process was gone before its replacement started"
    replacement = start_replica(connector_factory, config, "a-again", env={POD: "replica-a"})
    replaced_after = time.monotonic() - terminated
    wait_for(lambda: delivered_by(replacement) > 0, 30, "the replacement to deliver")
    a_code = a.proc.wait(30)
    cdp_sandbox.set_faults(latency_ms=0, latency_jitter_ms=0)  # the jitter alone averages 1 s
    backlog.caught_up(60)
    abandoned = sum(1 for r in cdp_sandbox.requests() if r["status"] == "none")
    print(f"old: {a_in_flight:g} requests in flight at SIGTERM, exited "
          f"{a_exit() - terminated:.1f} s after it with {a_code}; replacement owned partitions "
          f"{replaced_after:.1f} s after it; {abandoned} requests left unanswered")  # fmt: skip
    check_one_owner_per_guest(backlog, cdp_sandbox, moved, [f"static: {owned(replacement, b)}"])


# -- SIGTERM --------------------------------------------------------------------------------


def test_sigterm_with_a_slow_cdp_exits_within_the_drain_timeout_and_loses_nothing(
    bootstrap: str, schema_registry: Any, unique: str,
    connector_factory: ConnectorFactory, cdp_sandbox: Any,
) -> None:  # fmt: skip
    """A 2 s sandbox and ``drain_timeout_seconds: 5``: SIGTERM → exit within ~6 s, every
    request it opened is answered before it exits, and its successor posts nothing again.

    Catches: a drain that waits for every held record (not only requests in flight), a
    revoke wait run twice (drain, then again from close), leaving requests open at exit,
    or a final commit without the finished offsets."""
    backlog = Backlog(bootstrap, schema_registry.url, unique, records=2000, guests=1000, seed=166)
    cdp_sandbox.set_faults(latency_ms=2000)
    drain = 5.0
    config = backlog.config(
        connector_factory, cdp_sandbox.url, kafka=kafka_section(backlog), delivery=delivery(),
        shutdown={"drain_timeout_seconds": drain},
    )  # fmt: skip
    connector = connector_factory.start(config)
    wait_accepted(cdp_sandbox, 1, timeout=30)
    wait_for(lambda: any(r["end"] is None for r in cdp_sandbox.requests()), 10,
             "requests in flight")  # fmt: skip
    signalled = time.time()
    connector.proc.send_signal(signal.SIGTERM)
    code = connector.proc.wait(30)
    took = time.time() - signalled
    stopped = snapshot(cdp_sandbox)
    unanswered = [r for r in stopped.requests if r["status"] == "none"]
    started_after = [r for r in stopped.requests if r["start"] > signalled + 0.5]

    cdp_sandbox.set_faults(latency_ms=0)
    connector_factory.start(config, "successor")
    backlog.caught_up()
    after = snapshot(cdp_sandbox)
    arrived = Counter(after.ids())
    reposted = duplicates(arrived.elements())
    print(f"SIGTERM → exit {took:.2f} s (drain timeout {drain:g} s), code {code}; "
          f"{len(unanswered)} requests left unanswered; {len(started_after)} started > 0.5 s "
          f"after SIGTERM; successor re-posted {reposted}")  # fmt: skip
    assert code == 0
    assert took <= drain + 1.5, f"exit took {took:.2f} s"
    assert unanswered == [], "requests still open when the process exited"
    assert started_after == [], "new attempts started while draining"
    assert set(backlog.ids) - set(arrived) == set(), "records lost"
    assert reposted == 0, "the successor posted again what was delivered before SIGTERM"


# -- a record with two events ---------------------------------------------------------------


def two_event_mapping(tmp: Path, name_length: int | None) -> Path:
    """PRODUCT_ADDED → VIEW then ADD (both carry the event id); everything else skipped.
    ``name_length``: the product name cut to that many characters."""
    name: Any = "payload.name"
    if name_length is not None:
        name = {"path": "payload.name", "transform": {"truncate": name_length}}
    base = {
        "channel": {"const": "WEB"},
        "browser_id": "anonymous_id",
        "session_id": "session_id",
        "pos": "site",
        "currency": {"const": "EUR"},
    }
    view = {"type": "VIEW", "fields": {"ext": {"eventId": "event_id"}}}
    add = {
        "type": "ADD",
        "fields": {"product": {"sku": "payload.sku", "name": name}, "ext": {"eventId": "event_id"}},
    }
    rule = {"name": "added", "when": {"event_type": "PRODUCT_ADDED"}, "emit": [view, add]}
    mapping = {
        "version": 1,
        "defaults": {"on_no_match": "skip", "guest_key": "anonymous_id", "fields": base},
        "rules": [rule],
    }
    path = tmp / f"two-events-{name_length}.yaml"
    path.write_text(yaml.safe_dump(mapping))
    return path


@pytest.fixture
def strict_sandbox(tmp_path: Path) -> Iterator[Any]:
    """A sandbox whose spec allows product names of at most 8 characters (the sample's
    are longer): it refuses every ADD with 400 and accepts the VIEWs."""
    spec = yaml.safe_load(SPEC.read_text())
    product = spec["components"]["schemas"]["ProductReference"]["properties"]
    product["name"]["maxLength"] = 8
    strict = tmp_path / "strict-spec.yaml"
    strict.write_text(yaml.safe_dump(spec))
    folder = tmp_path / "strict-sandbox"
    folder.mkdir()
    sandbox = start_sandbox(folder, "--spec", str(strict), spec=False)
    yield sandbox
    stop_sandbox(sandbox)


def test_view_delivered_add_refused_one_dead_letter_and_replay_posts_only_the_add(
    bootstrap: str, schema_registry: Any, unique: str, tmp_path: Path,
    connector_factory: ConnectorFactory, strict_sandbox: Any,
) -> None:  # fmt: skip
    """A record mapped to VIEW + ADD whose ADD the CDP refuses (400): one dead letter per
    record, whose ``cdp.errors.events.delivered`` names the delivered VIEW and the failed
    ADD; with the mapping fixed, ``replay-dlq`` posts the ADDs and no VIEW again.

    Catches: the whole record dead-lettered without saying which event got through, a
    replay that posts every event of the record again (duplicate VIEWs), or a record
    dead-lettered twice."""
    backlog = Backlog(bootstrap, schema_registry.url, unique, records=80, guests=20, seed=167)
    added = {r["event_id"] for r in backlog.records if r["event_type"] == "PRODUCT_ADDED"}
    assert len(added) >= 5
    config = backlog.config(
        connector_factory, strict_sandbox.url, kafka=kafka_section(backlog),
        mapping=str(two_event_mapping(tmp_path, None)),
    )  # fmt: skip
    env = {"CDP_CLIENT_KEY": strict_sandbox.client_key, "CDP_API_TOKEN": strict_sandbox.api_token}
    connector = start_replica(
        connector_factory, config, "run", env=env, expect_errors=[r"dead.letter", r"400"]
    )
    backlog.caught_up()
    assert connector.terminate() == 0

    assert sorted(event_id(e) for e in strict_sandbox.records("VIEW")) == sorted(added)
    assert strict_sandbox.records("ADD") == []
    letters: list[Message] = read_topic(bootstrap, backlog.dlq, len(added))
    assert len(letters) == len(added)
    origins = Counter(
        (headers_of(m)["__connect.errors.partition"], headers_of(m)["__connect.errors.offset"])
        for m in letters
    )
    assert max(origins.values()) == 1  # one dead letter per record
    for letter in letters:
        assert headers_of(letter)["cdp.errors.http.status"] == "400"
        progress = headers_of(letter).get("cdp.errors.events.delivered")
        assert progress is not None, headers_of(letter)
        assert yaml.safe_load(progress) == {
            "delivered": [{"index": 0, "type": "VIEW"}], "failed": {"index": 1, "type": "ADD"},
        }  # fmt: skip

    strict_sandbox.reset()
    fixed = write_config(
        tmp_path, {**config, "mapping": str(two_event_mapping(tmp_path, 8))}, "fixed.yaml"
    )
    result = run_cli("replay-dlq", "--config", str(fixed), env=env, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    assert strict_sandbox.records("VIEW") == [], "replay posted the delivered VIEW again"
    assert sorted(event_id(e) for e in strict_sandbox.records("ADD")) == sorted(added)
