"""The one place that builds the stages from the config and owns their lifetimes.

    source thread ──prepare (decode → map)──▶ dispatcher (loop) ──▶ CDP
         │  skips, decode/map failures            │ permanent / exhausted
         ▼                                        ▼
    dead-letter topic ◀───────────────────────────┘
         ▼
    offset tracker ──▶ commits (source thread)

``run(settings)`` returns the process exit code: 0 after a clean shutdown, 1 when
something forced a stop (a dead-letter write failed, a fatal Kafka error).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from connector.browser_ids import BrowserIdResolver, BrowserIdStore
from connector.cdp.client import CdpClient, resolve_base_url
from connector.cdp.dialect import get_dialect
from connector.config import Settings, TopicSettings
from connector.deadletter import DeadLetterQueue, verify_at_start
from connector.decode import ConfluentAvroDecoder, SchemalessAvroDecoder, ValueDecoder
from connector.dispatch import Dispatcher, Sender
from connector.errors import DecodeError
from connector.eventloop import run_loop, tune_gc
from connector.mapping import Mapper, MapResult, compile_mapping
from connector.observability import Metrics, build_app, start_server
from connector.offsets import OffsetTracker
from connector.registry import RegistryClient
from connector.schemas import load_schema
from connector.source import KafkaSource
from connector.state import RunState

log = logging.getLogger(__name__)


class Preparer:
    """Decode and map one record value; decoders are built once per topic."""

    def __init__(self, settings: Settings, mapper: Mapper) -> None:
        self._settings = settings
        self._mapper = mapper
        self._decoders: dict[str, ValueDecoder] = {}
        self._registry: RegistryClient | None = None

    def __call__(self, topic: str, value: bytes | None) -> MapResult:
        decoder = self._decoders.get(topic) or self._decoder_for(topic)
        if value is None:
            raise DecodeError("record has no value (a tombstone); nothing to map")
        return self._mapper.map(decoder.decode(value), topic)

    def _decoder_for(self, topic: str) -> ValueDecoder:
        spec = self._settings.topic_for(topic)
        decoder = build_decoder(spec, self._registry_client)
        self._decoders[topic] = decoder
        return decoder

    def _registry_client(self) -> RegistryClient:
        if self._registry is None:
            reg = self._settings.schema_registry
            if reg is None:
                raise DecodeError("no schema_registry configured for a Confluent-encoded topic")
            self._registry = RegistryClient(
                reg.url, timeout=reg.timeout_seconds, basic_auth=reg.basic_auth()
            )
        return self._registry


def build_decoder(spec: TopicSettings, registry: Callable[[], RegistryClient]) -> ValueDecoder:
    reader = load_schema(spec.reader_schema) if spec.reader_schema else None
    if spec.decoder == "schemaless":
        assert spec.schema_path is not None  # noqa: S101 - the config model guarantees it
        return SchemalessAvroDecoder(load_schema(spec.schema_path), reader)
    return ConfluentAvroDecoder(registry(), reader)


def instance_name() -> str:
    """Host (pod) name and pid: tells replicas apart in commits and metrics."""
    return f"{os.environ.get('HOSTNAME') or socket.gethostname()}-{os.getpid()}"


def build_mapper(settings: Settings) -> Mapper:
    return compile_mapping(settings.mapping, get_dialect(settings.cdp.dialect))


def build_client(settings: Settings) -> CdpClient:
    """The CDP client as ``run``, ``check`` and ``replay-dlq`` all use it."""
    return CdpClient(
        resolve_base_url(settings.cdp.region, settings.cdp.base_url),
        settings.cdp.client_key().get_secret_value(),
        settings.cdp.api_token_if_needed(),
        timeout=settings.cdp.timeout_seconds,
        max_connections=settings.delivery.max_in_flight,
        transport=settings.cdp.effective_transport,
        http_client=settings.cdp.http_client,
    )


@asynccontextmanager
async def delivery_sender(settings: Settings, mapper: Mapper) -> AsyncIterator[Sender]:
    """What the dispatcher posts through: the CDP client, behind the browser-id resolver
    when the mapping asks for ids from the CDP (``browser_id_for``). Owns both lifetimes."""
    client = build_client(settings)
    if not mapper.uses_browser_ids:
        async with client:
            yield client
        return
    store = BrowserIdStore(settings.kafka, settings.cdp.browser_ids)
    await asyncio.to_thread(store.start)
    try:
        async with client:
            yield BrowserIdResolver(client, store)
    finally:
        await asyncio.to_thread(store.stop)


async def run(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT (drain, commit, leave) or a fatal failure."""
    loop = asyncio.get_running_loop()
    mapper = build_mapper(settings)  # start-up errors before touching Kafka or the CDP
    await asyncio.to_thread(verify_at_start, settings)  # a DLQ topic it cannot create: exit 2
    tune_gc()  # after the big start-up allocations (rules, models); docs/benchmarks.md
    state = RunState()
    instance = instance_name()
    metrics = Metrics(instance)
    tracker = OffsetTracker()
    dlq = DeadLetterQueue(
        settings.kafka.producer_conf(),
        settings.dead_letter.topic,
        state,
        on_written=metrics.dead_lettered,
    )
    async with delivery_sender(settings, mapper) as sender:
        dispatcher = Dispatcher(sender, dlq, tracker, settings.delivery, state, metrics)
        source = KafkaSource(
            settings,
            Preparer(settings, mapper),
            tracker,
            dlq,
            dispatcher,
            loop,
            state,
            instance,
            stats_cb=metrics.update_from_stats,
            on_records=metrics.consumed,
            on_commit=metrics.committed,
            on_skipped=metrics.skipped,
        )

        def refresh() -> None:
            metrics.requests_in_flight.set(dispatcher.requests_in_flight)
            metrics.records_buffered.set(tracker.pending)
            metrics.paused.set(1 if source.paused else 0)
            metrics.circuit_open.set(1 if state.circuit_open else 0)
            metrics.halted.set(1 if state.halted_reason else 0)
            metrics.assigned_partitions.set(state.assigned)
            metrics.ready.set(1 if state.readiness()[0] else 0)

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
