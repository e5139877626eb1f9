"""The one place that builds the stages from the config and owns their lifetimes.

    reader ──settle (decode → map)──▶ dispatcher (loop) ──▶ CDP
       │    skips, decode/map failures      │ permanent / exhausted
       ▼                                    ▼
    dead-letter topic ◀─────────────────────┘
       ▼
    offset tracker ──▶ Committer (reader's thread)

Two readers stand in front of the same settle, dead-letter and commit code: the
source thread for ``run`` (the configured topics, a consumer group, rebalances)
and the dead-letter reader for ``replay-dlq`` (the dead-letter topic up to its
end as of start). ``run(settings)`` and ``replay(settings, options)`` return the
process exit code: 0 when done cleanly, 1 when something forced a stop (a
dead-letter write failed, a fatal Kafka error, a halt).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypedDict

from confluent_kafka import Consumer, Producer

from connector.cdp.client import CdpClient, resolve_base_url
from connector.cdp.dialect import Dialect, get_dialect, other_dialects
from connector.config import Settings
from connector.decode.registry import registry_client
from connector.delivery.browser_ids import BrowserIdResolver, BrowserIdStore
from connector.delivery.dispatcher import Dispatcher, Sender
from connector.eventloop import run_loop, tune_gc
from connector.kafka.commits import Committer, commit_metadata
from connector.mapping import Mapper, PointsOfSale, compile_mapping
from connector.observability import Metrics, brokers_up, build_app, start_server
from connector.offsets.metadata import run_ahead_limit
from connector.offsets.tracker import OffsetTracker
from connector.records import lane_rule
from connector.run_state import RunState
from connector.settle.deadletter import (
    DeadLetterQueue,
    Origin,
    OriginOf,
    producer_conf,
    replayed_origin,
    verify_at_start,
)
from connector.settle.record_paths import SchemaWatch, check_record_paths
from connector.settle.stage import Preparer, Settle, UnknownPosLog, Wait
from connector.source.handoff import Handoff
from connector.source.kafka_source import KafkaSource
from connector.source.replay_reader import DlqReader, ReplayError, ReplayOptions
from connector.source.settings import SourceSettings

__all__ = [
    "build_client",
    "build_mapper",
    "consumer_conf",
    "delivery_sender",
    "instance_name",
    "main",
    "on_stats",
    "replay",
    "replay_main",
    "run",
]

log = logging.getLogger(__name__)


def instance_name() -> str:
    """Host (pod) name and pid: tells replicas apart in commits and metrics."""
    return f"{os.environ.get('HOSTNAME') or socket.gethostname()}-{os.getpid()}"


class CompileOptions(TypedDict):
    """The keyword arguments ``mapping_options`` gives the mapping compiler."""

    points_of_sale: PointsOfSale | None
    others: tuple[Dialect, ...]


def build_mapper(settings: Settings) -> Mapper:
    """The config's mapping, compiled for its dialect and its points of sale (if listed)."""
    dialect = get_dialect(settings.cdp.dialect)
    return compile_mapping(settings.mapping, dialect, **mapping_options(settings))


def mapping_options(settings: Settings) -> CompileOptions:
    """What the config adds to a mapping's compile: the tenant's points of sale (if
    listed) and the other dialects (named when the rules fit one of them instead).
    ``run`` and the studio compile with the same."""
    pos = settings.cdp.points_of_sale
    return {
        "points_of_sale": PointsOfSale.of(pos) if pos else None,
        "others": other_dialects(settings.cdp.dialect),
    }


def build_client(settings: Settings) -> CdpClient:
    """The CDP client as ``run``, ``check`` and ``replay-dlq`` all use it."""
    base_url = resolve_base_url(settings.cdp.region, settings.cdp.base_url)
    return CdpClient(
        base_url,
        settings.cdp.client_key().get_secret_value(),
        settings.cdp.api_token_if_needed(),
        timeout=settings.cdp.timeout_seconds,
        max_connections=settings.delivery.max_in_flight,
        transport=settings.cdp.effective_transport,
        http_client=settings.cdp.http_client,
        ssl_context=settings.cdp.tls.context() if base_url.startswith("https:") else None,
        proxy=settings.cdp.proxy_for(base_url),
        max_idle=settings.cdp.keepalive_max_idle_seconds,
    )


def consumer_conf(settings: Settings, group: dict[str, Any], client_id: str) -> dict[str, Any]:
    """A consumer that commits only what it is told to (explicit offsets, no auto-commit);
    ``group`` is its ``group.id`` (and, for ``run``, ``group.instance.id``)."""
    return {
        **settings.kafka.consumer_conf(),
        **group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "client.id": client_id,
    }


class _Stages:
    """What both readers share, built the same way for ``run`` and ``replay-dlq``."""

    def __init__(
        self, settings: Settings, instance: str, origin_of: OriginOf, commit_as: str
    ) -> None:
        self.mapper = build_mapper(settings)  # start-up errors before Kafka or the CDP
        self.state = RunState()
        self.metrics = Metrics(instance)
        prefix = commit_metadata(commit_as)
        # Bounded so that every partition's finished set fits its commit metadata whole.
        ahead = run_ahead_limit(prefix, settings.delivery.max_run_ahead, settings.kafka.poll_batch)
        self.tracker = OffsetTracker(max_ahead=ahead)
        self.dlq = DeadLetterQueue(
            Producer(producer_conf(settings.kafka.producer_conf())),
            settings.dead_letter.topic,
            self.state,
            on_written=self.metrics.dead_lettered,
            origin_of=origin_of,
        )
        self.committer = Committer(self.tracker, self.state, prefix, self.metrics.committed)
        self.registry = registry_client(settings.schema_registry)  # one for the process
        self.unknown_pos = UnknownPosLog(
            self.metrics.unknown_point_of_sale.inc, "cdp.points_of_sale"
        )
        self._settings = settings

    def settle(self, wait: Wait, watch: SchemaWatch | None = None) -> Settle:
        return Settle(
            Preparer(self._settings.topic_for, self.registry, self.mapper, watch),
            lane_rule(self._settings.delivery.ordering),
            self.tracker,
            self.dlq,
            self.state,
            wait,
            on_skipped=self.metrics.skipped,
            on_unknown_pos=self.unknown_pos,
        )

    def dispatcher(self, sender: Sender) -> Dispatcher:
        return Dispatcher(
            sender, self.dlq, self.tracker, self._settings.delivery, self.state, self.metrics
        )


@asynccontextmanager
async def delivery_sender(
    settings: Settings, mapper: Mapper, metrics: Metrics, state: RunState | None = None
) -> AsyncIterator[Sender]:
    """What the dispatcher posts through: the CDP client, behind the browser-id resolver
    when the mapping asks for ids from the CDP (``browser_id_for``). Owns both lifetimes.

    ``state``: the run's, whose partition assignments tell the resolver when to catch up
    with the id topic; None (replay-dlq) catches up for every new visitor."""
    client = build_client(settings)
    metrics.watch_stale_retries(lambda: client.stale_retries)
    if client.proxy is not None:
        log.info("CDP requests go through the %s", client.proxy)
    if not mapper.uses_browser_ids:
        async with client:
            yield client
        return
    store = BrowserIdStore(settings.kafka, settings.cdp.browser_ids)
    await asyncio.to_thread(store.start)
    assignments = (lambda: state.assignments) if state is not None else None
    resolver = BrowserIdResolver(client, store, metrics, assignments)  # metrics: the IdObserver
    try:
        async with client:
            yield resolver
    finally:
        resolver.close()
        await asyncio.to_thread(store.stop)


async def run(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT (drain, commit, leave) or a fatal failure."""
    loop = asyncio.get_running_loop()
    instance = instance_name()
    stages = _Stages(settings, instance, Origin.read_at, commit_as=instance)
    # Errors stop the start.
    await asyncio.to_thread(check_record_paths, settings, stages.mapper, stages.registry)
    await asyncio.to_thread(verify_at_start, settings)  # a DLQ topic it cannot create: exit 2
    problems = stages.metrics.mapping_path_problems
    watch = SchemaWatch(stages.mapper, lambda topic, n: problems.labels(topic).inc(n))
    tune_gc()  # after the big start-up allocations (rules, models); docs/benchmarks.md
    state, metrics, tracker = stages.state, stages.metrics, stages.tracker
    conf: dict[str, Any] = {
        # librdkafka prefetches up to 64 MiB by default, outside max_buffered_records;
        # 16 MiB still keeps the consume loop fed (docs/benchmarks.md). Overridable.
        "queued.max.messages.kbytes": 16384,
        **consumer_conf(settings, settings.kafka.member_conf(), f"cdp-connector-{instance}"),
        "partition.assignment.strategy": "cooperative-sticky",
        # Served inside consume(): the broker's answer to every commit, sync or async.
        "on_commit": stages.committer.on_committed,
        "stats_cb": lambda stats: on_stats(stats, metrics, state),
    }
    conf.setdefault("statistics.interval.ms", 5000)  # kafka.client may set it
    async with delivery_sender(settings, stages.mapper, stages.metrics, state) as sender:
        dispatcher = stages.dispatcher(sender)
        source = KafkaSource(
            SourceSettings.of(settings),
            lambda own: Consumer({**conf, **own}),
            stages.settle(lambda delay: source.wait_out(delay), watch),
            tracker,
            stages.dlq,
            Handoff(dispatcher, loop, dispatcher.flow),
            stages.committer,
            state,
            on_records=metrics.consumed,
            on_finished_before=metrics.finished_before,
            on_read=metrics.track_time_lag(tracker.heads).read,
        )

        named_topics = [t.name for t in settings.topics if t.name is not None]

        def refresh() -> None:
            metrics.requests_in_flight.set(dispatcher.requests_in_flight)
            metrics.records_buffered.set(tracker.pending)
            metrics.paused.set(1 if source.paused else 0)
            metrics.circuit_open.set(1 if state.circuit_open else 0)
            metrics.halted.set(1 if state.halted_reason else 0)
            metrics.assigned_partitions.set(state.assigned)
            metrics.ready.set(1 if state.readiness()[0] else 0)
            metrics.topics_checked(named_topics, state.missing_topics)

        app = build_app(state, metrics, refresh, lambda: source.thread)
        obs = settings.observability
        runner, port = await start_server(app, obs.host, obs.port)
        log.info("health and metrics on http://%s:%d (/healthz /readyz /metrics)", obs.host, port)
        _install_signal_handlers(loop, source)
        dispatcher.start()
        source.start()
        log.info(
            "started: group=%s topics=%s cdp=%s dialect=%s transport=%s instance=%s",
            settings.kafka.group_id,
            ",".join(t.subscription for t in settings.topics),
            resolve_base_url(settings.cdp.region, settings.cdp.base_url),
            settings.cdp.dialect,
            settings.cdp.effective_transport,
            instance,
        )
        try:
            await _wait_for_thread(source, state)
        finally:
            await dispatcher.stop()
            await runner.cleanup()
    if state.fatal_exit is not None:
        log.error("stopped because: %s", state.fatal_exit)
        return 1
    log.info("stopped cleanly; committed offsets cover every finished record")
    return 0


def on_stats(stats_json: str, metrics: Metrics, state: RunState) -> None:
    """The consumer's ``stats_cb``: lag gauges; brokers back after "all brokers down"."""
    metrics.update_from_stats(stats_json)
    if state.broker_down_since is not None and brokers_up(stats_json):
        state.broker_down_since = None


async def replay(settings: Settings, options: ReplayOptions) -> tuple[int, str]:
    """Replay the dead-letter topic up to its end as of start; the exit code and summary."""
    instance = instance_name()
    stages = _Stages(settings, instance, replayed_origin, commit_as=f"{instance} replay")
    group = options.group or f"{settings.kafka.group_id}.dlq-replay"
    consumer = Consumer(
        {
            **consumer_conf(
                settings,
                {"group.id": group, "auto.offset.reset": "earliest"},  # every dead letter
                f"cdp-connector-replay-{instance}",
            ),
            "on_commit": stages.committer.on_committed,
        }
    )
    reader = DlqReader(
        consumer,
        settings.dead_letter.topic,
        group,
        stages.settle(lambda _delay: True),  # a dependency down: stop, run it again later
        stages.tracker,
        stages.committer,
        stages.dlq,
        stages.state,
        options,
    )
    try:
        await asyncio.to_thread(reader.assign)
    except ReplayError as exc:
        log.error("%s", exc)
        consumer.close()
        return 1, reader.summary(stages.metrics)
    async with delivery_sender(settings, stages.mapper, stages.metrics) as sender:
        dispatcher = stages.dispatcher(sender)
        dispatcher.start()
        try:
            await reader.run(dispatcher, SourceSettings.of(settings))
        finally:
            await dispatcher.stop()
    await asyncio.to_thread(reader.finish)
    return (1 if reader.stopped else 0), reader.summary(stages.metrics)


async def _wait_for_thread(source: KafkaSource, state: RunState) -> None:
    while source.thread.is_alive():
        if state.fatal_exit is not None:
            source.stop()
        await asyncio.sleep(0.1)


def _install_signal_handlers(loop: asyncio.AbstractEventLoop, source: KafkaSource) -> None:
    """First SIGTERM/SIGINT: stop reading, drain, commit, leave. Second: exit now."""
    received: list[int] = []

    def on_signal(signum: int) -> None:
        if received:
            log.warning("second signal: exiting now without draining")
            logging.shutdown()
            os._exit(128 + signum)
        received.append(signum)
        log.info("signal %s: draining and shutting down", signal.Signals(signum).name)
        source.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)


def main(settings: Settings) -> int:
    """Entry point for ``cdp-connector run``."""
    return run_loop(run(settings))


def replay_main(settings: Settings, options: ReplayOptions) -> int:
    """Entry point for ``cdp-connector replay-dlq``: prints the summary, returns the code."""
    code, summary = asyncio.run(replay(settings, options))
    print(summary)
    return code
