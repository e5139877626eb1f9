"""Browser ids for anonymous visitors: made once per visitor, kept in a compacted topic.

A mapping may ask for ``browser_id: {browser_id_for: anonymous_id}``. Mapping runs on
the consumer thread and must not do HTTP, so it writes a placeholder naming the
visitor (``BROWSER_ID_PLACEHOLDER`` + visitor id). :class:`BrowserIdResolver` sits in
front of the transport on the event loop: before a body is posted it swaps the
placeholder for the visitor's CDP browser id, creating one through
``GET /v1.2/browser/create.json`` the first time.

The same visitor must keep the same id across restarts and replicas, so
:class:`BrowserIdStore` keeps ``visitor id → browser id`` in a compacted Kafka topic:

1. start: create the topic (``cleanup.policy=compact``) if missing, read it to its end
   into a bounded LRU map; a thread then keeps tailing it (ids other replicas make);
2. a visitor not in memory, after partitions were assigned: wait until the tailer has
   read up to the topic's current end (the partitions' previous owner may have made the
   visitor's id a moment ago), look again;
3. still unknown: create a browser id, write it to the topic and wait for the broker's
   acknowledgement, and only then post the event that uses it.

Step 2 is needed once per assignment, not once per visitor: ids for the visitors of a
partition are made by its owner only, so once a catch-up that started after the
assignment is done, every id the previous owner wrote is in memory, and what this
replica writes it remembers itself. A new visitor then costs a create request and a
write. A write that failed may still have landed, so the next new visitor catches up
again. A reader without partitions of its own (``replay-dlq``, beside a running
connector) catches up for every new visitor.

New visitors come in crowds (a backlog after an outage brings thousands), so steps 2
and 3 are batched (``_Batched``): one catch-up serves every visitor waiting at the
moment it starts, one produce + flush writes every id made meanwhile, each on a thread
of its own (not the loop's default executor, which other start-up and shutdown work
shares). What arrives during a run waits for the next, so a visitor waits at most two
runs of each. The create request itself is made by the dispatcher worker that posts
the visitor's event, inside its slot: creations share ``delivery.max_in_flight`` with
the events, and a worker waiting for an id holds up no other visitor's lane.

Concurrent first events of one visitor share one in-flight creation (a future per
visitor), so one replica never makes two ids for a visitor. Two replicas cannot race
on a brand-new visitor as long as the guest key (the ordering lane) is the visitor id
and records are partitioned by it: one partition, one owner at a time, and step 2
covers the hand-over. Keyed by anything else, two replicas could each make an id; the
topic then keeps the last one written (both replicas converge on it).

Bounded memory: at most ``max_entries`` ids are held; a visitor evicted from memory
(least recently used) who comes back gets a new id, as if the cookie were cleared.
Size it above the number of visitors active within the topic's lifetime.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from json.encoder import encode_basestring_ascii as _json_string  # json.dumps(str), in C
from typing import Generic, Protocol, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.cimpl import NewTopic

from connector.cdp.answer import Answer, Outcome
from connector.config import BrowserIdSettings, KafkaSettings
from connector.errors import ConfigError, TransientError
from connector.kafka.topics import ensure_topic
from connector.mapping.fields import BROWSER_ID_PLACEHOLDER

__all__ = ["BrowserIdResolver", "BrowserIdStore", "find_placeholder"]

# What a freshly created topic answers for a moment (librdkafka calls them not retriable).
_NO_LEADER_YET = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE}

log = logging.getLogger(__name__)

# The placeholder as the dialect's JSON dump writes it (NUL escaped as \u0000). A `"`
# cannot occur unescaped inside a JSON string, so this byte run is always the real key.
_MARKER = b'"browser_id":' + json.dumps(BROWSER_ID_PLACEHOLDER).encode()[:-1]


def find_placeholder(body: bytes) -> tuple[int, int, str] | None:
    """``(start, end, visitor)`` of a ``"browser_id":"<placeholder>"`` pair, or None."""
    start = body.find(_MARKER)
    if start < 0:
        return None
    position = start + len(_MARKER)
    quote = body.find(b'"', position)
    if quote > 0 and body.find(b"\\", position, quote) < 0:  # no escape: the bytes are the id
        return start, quote + 1, body[position:quote].decode()
    while True:  # the closing quote: one not escaped by an odd run of backslashes
        quote = body.find(b'"', position)
        if quote < 0:
            return None
        backslashes = 0
        while body[quote - 1 - backslashes] == 0x5C:
            backslashes += 1
        if backslashes % 2 == 0:
            break
        position = quote + 1
    value = json.loads(body[start + len(b'"browser_id":') : quote + 1])
    return start, quote + 1, value[len(BROWSER_ID_PLACEHOLDER) :]


class BrowserIdStore:
    """``visitor id → browser id``: an LRU map in memory, backed by a compacted topic.

    ``start``/``stop`` and the blocking ``catch_up``/``put`` run off the event loop
    (``asyncio.to_thread``); ``get`` is cheap and thread-safe.
    """

    def __init__(self, kafka: KafkaSettings, settings: BrowserIdSettings) -> None:
        self._kafka = kafka
        self._settings = settings
        self._topic = settings.topic
        self._ids: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self._advanced = threading.Condition(self._lock)  # the tailer read further
        self._positions: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._meta: Consumer | None = None
        self._meta_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ids)

    # -- lifetime -------------------------------------------------------------------

    def start(self) -> None:
        """Ensure the topic, read it to its end, start tailing it (blocking)."""
        timeout = self._settings.timeout_seconds
        self._ensure_topic(timeout)
        group = f"cdp-connector-browser-ids-{uuid.uuid4().hex[:8]}"  # never commits
        consumer_conf = {**self._kafka.consumer_conf(), "group.id": group,
                         "enable.auto.commit": False, "enable.partition.eof": False}  # fmt: skip
        self._meta = Consumer(consumer_conf)
        self._consumer = Consumer(consumer_conf)
        partitions = self._partitions(timeout)
        self._consumer.assign(
            [TopicPartition(self._topic, p, -2) for p in partitions]  # -2: OFFSET_BEGINNING
        )
        self._producer = Producer(
            {
                **self._kafka.producer_conf(),
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 0,
            }
        )
        deadline = time.monotonic() + timeout
        while True:  # a topic created a moment ago may not have its leaders yet
            try:
                ends = self._ends(partitions, timeout)
                break
            except TransientError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        while not self._reached(ends):
            if time.monotonic() > deadline:
                raise TransientError(f"browser ids: could not read {self._topic} to its end")
            self._poll_once()
        log.info("browser ids: %d loaded from %s", len(self._ids), self._topic)
        self._thread = threading.Thread(target=self._tail, name="browser-ids", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the tailer and close the clients, flushing ids not yet written (bounded);
        ``pipeline.delivery_sender`` calls it after the dispatcher stopped."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for client in (self._consumer, self._meta):
            if client is not None:
                client.close()
        if self._producer is not None:
            self._producer.flush(5)

    # -- lookups and writes -----------------------------------------------------------

    def get(self, visitor: str) -> str | None:
        """The visitor's browser id if known (it becomes the most recently used).

        Called by the resolver for every event, on the loop, so without the lock: ``get``
        and ``move_to_end`` of the C ``OrderedDict`` are each one atomic step under the
        GIL (str keys call no Python code). Between the two the tailer may drop the
        visitor (eviction, tombstone); the id read is still the answer of that instant.
        """
        ref = self._ids.get(visitor)
        if ref is not None:
            try:  # noqa: SIM105 - contextlib.suppress costs a context manager per event
                self._ids.move_to_end(visitor)
            except KeyError:  # dropped meanwhile by the tailer
                pass
        return ref

    def catch_up(self) -> None:
        """Block until the tailer has read every record written before this call."""
        timeout = self._settings.timeout_seconds
        with self._lock:
            partitions = sorted(self._positions)
        ends = self._ends(partitions, timeout)
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._reached_locked(ends):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TransientError(f"browser ids: {self._topic} did not catch up in time")
                self._advanced.wait(left)  # woken by the tailer as it reads

    def put(self, visitor: str, ref: str) -> None:
        """Write ``visitor → ref`` and wait for the broker's acknowledgement."""
        error = self.put_many([(visitor, ref)])[0]
        if error is not None:
            raise error

    def put_many(self, pairs: Sequence[tuple[str, str]]) -> list[TransientError | None]:
        """Write each ``visitor → ref``, one flush for all; per pair None once the broker
        acknowledged it (it is remembered then), or why not."""
        producer = self._producer
        if producer is None:
            raise RuntimeError("BrowserIdStore.put before start()")
        errors: list[KafkaError | None] = [None] * len(pairs)
        acked = [False] * len(pairs)

        def on_delivery(i: int) -> Callable[[KafkaError | None, object], None]:
            def done(error: KafkaError | None, _msg: object) -> None:
                errors[i], acked[i] = error, error is None

            return done

        for i, (visitor, ref) in enumerate(pairs):
            producer.produce(self._topic, key=visitor.encode(), value=ref.encode(),
                             on_delivery=on_delivery(i))  # fmt: skip
        producer.flush(self._settings.timeout_seconds)
        out: list[TransientError | None] = []
        for (visitor, ref), error, ok in zip(pairs, errors, acked, strict=True):
            if ok:
                self._remember(visitor, ref)
                out.append(None)
            else:
                why = error.str() if error is not None else "timed out"
                out.append(TransientError(f"browser ids: writing to {self._topic} failed: {why}"))
        return out

    # -- internals ----------------------------------------------------------------------

    def _remember(self, visitor: str, ref: str | None) -> None:
        with self._lock:
            if ref is None:  # a tombstone: forget the visitor
                self._ids.pop(visitor, None)
                return
            self._ids[visitor] = ref
            self._ids.move_to_end(visitor)
            while len(self._ids) > self._settings.max_entries:
                self._ids.popitem(last=False)

    def _poll_once(self) -> None:
        consumer = self._consumer
        assert consumer is not None  # noqa: S101 - started
        # The first record as soon as it arrives, then what queued behind it: a catch-up
        # waits for this thread, so it must not sit out a batch's timeout (consume waits
        # for all the messages it asks for, or the timeout).
        messages = consumer.consume(1, timeout=0.1)
        if messages:
            messages += consumer.consume(499, timeout=0)
        for msg in messages:
            error = msg.error()
            if error is not None:
                log.warning("browser ids: %s", error.str())
                continue
            key, value = msg.key(), msg.value()
            if key is not None:
                self._remember(key.decode(), None if value is None else value.decode())
            partition, offset = msg.partition(), msg.offset()
            if partition is not None and offset is not None:
                with self._lock:
                    self._positions[partition] = offset + 1
                    self._advanced.notify_all()

    def _tail(self) -> None:
        # Every new visitor's catch-up waits for this thread: if it ended, they would all
        # wait out their timeout, again and again, and hold their partitions' commit points
        # while /readyz says ready. So it never ends before stop(), whatever it hits.
        while not self._stop.is_set():
            try:
                self._poll_once()
            except KafkaException as exc:  # keep tailing; the next poll may succeed
                log.warning("browser ids: %s", exc)
                time.sleep(0.5)
            except Exception:
                log.exception("browser ids: reading %s failed; reading on", self._topic)
                time.sleep(0.5)

    def _reached(self, ends: dict[int, int]) -> bool:
        with self._lock:
            return self._reached_locked(ends)

    def _reached_locked(self, ends: dict[int, int]) -> bool:
        return all(self._positions.get(p, 0) >= end for p, end in ends.items())

    def _ends(self, partitions: list[int], timeout: float) -> dict[int, int]:
        assert self._meta is not None  # noqa: S101 - started
        deadline = time.monotonic() + timeout
        with self._meta_lock:
            while True:
                try:
                    return {
                        p: self._meta.get_watermark_offsets(
                            TopicPartition(self._topic, p), timeout=timeout, cached=False
                        )[1]
                        for p in partitions
                    }
                except KafkaException as exc:
                    # A topic created a moment ago answers NOT_LEADER until its leaders are up.
                    if exc.args[0].code() not in _NO_LEADER_YET or time.monotonic() > deadline:
                        raise TransientError(f"browser ids: {self._topic}: {exc}") from exc
                time.sleep(0.1)

    def _partitions(self, timeout: float) -> list[int]:
        assert self._meta is not None  # noqa: S101 - started
        metadata = self._meta.list_topics(self._topic, timeout=timeout)
        topic = metadata.topics.get(self._topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise ConfigError(f"cdp.browser_ids.topic {self._topic!r} does not exist")
        partitions = sorted(topic.partitions)
        with self._lock:
            for p in partitions:
                self._positions.setdefault(p, 0)
        return partitions

    def _ensure_topic(self, timeout: float) -> None:
        new = NewTopic(
            self._topic,
            num_partitions=self._settings.partitions,
            replication_factor=self._settings.replication_factor,
            config={"cleanup.policy": "compact"},
        )
        ensure_topic(self._kafka, new, create=self._settings.create_topic,
                     section="cdp.browser_ids", timeout=timeout)  # fmt: skip


T = TypeVar("T")


class _Batched(Generic[T]):
    """``run(items)`` on a thread of its own for every item waiting when a run starts.

    ``await batched(item)`` returns when a run that started after the call has done the
    item (or raises what the run said about it: ``run`` answers None or an error per
    item, in order). One run at a time; items arriving meanwhile wait for the next."""

    def __init__(
        self,
        run: Callable[[list[T]], Sequence[Exception | None]],
        name: str,
        on_run: Callable[[int], None] = lambda _n: None,
    ) -> None:
        self._run = run
        self._on_run = on_run  # told the batch size of each run
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._waiting: list[tuple[T, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self.runs = 0  # how many runs so far (tests, metrics)

    async def __call__(self, item: T) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiting.append((item, future))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            batch, self._waiting = self._waiting, []
            self.runs += 1
            self._on_run(len(batch))
            items = [item for item, _ in batch]
            try:
                errors = await loop.run_in_executor(self._executor, self._run, items)
            except TransientError as exc:
                errors = [TransientError(str(exc)) for _ in batch]
            except Exception as exc:  # noqa: BLE001 - a bug: every waiter raises it
                errors = [exc] * len(batch)
            for (_, future), error in zip(batch, errors, strict=True):
                if future.done():  # its waiter was cancelled
                    continue
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class IdObserver(Protocol):
    """What metrics hear of browser ids (on the loop)."""

    def browser_id_created(self) -> None: ...
    def browser_id_batch(self, step: str, visitors: int) -> None: ...


class _NoIdObserver:
    def browser_id_created(self) -> None:
        pass

    def browser_id_batch(self, step: str, visitors: int) -> None:
        pass


class IdSource(Protocol):
    """The HTTP side the resolver needs (``CdpClient``)."""

    async def send(self, body: bytes) -> Answer:
        """Post one event body (the placeholder already replaced)."""
        ...

    async def create_browser_id(self) -> Answer:
        """A new browser id from the CDP: DELIVERED with ``ref`` set, or why not."""
        ...


class BrowserIdResolver:
    """A sender in front of the transport that fills in browser ids, then sends.

    Returns the transport's answers unchanged; a failure to make or store an id is an
    answer too (the browser/create answer, or RETRYABLE when Kafka failed), so the
    dispatcher's retry, halt and dead-letter rules apply as for any post.
    """

    def __init__(
        self,
        client: IdSource,
        store: BrowserIdStore,
        observer: IdObserver | None = None,
        assignments: Callable[[], int] | None = None,
    ) -> None:
        self._client = client
        self._store = store
        self._observer = observer or _NoIdObserver()
        self._pending: dict[str, asyncio.Future[str | Answer]] = {}
        self.created = 0
        # How many times partitions were assigned (``RunState.assignments``); None: no
        # partitions of its own, so every new visitor catches up (module docstring).
        self._assignments = assignments
        self._failed_writes = 0
        self._caught_up_at: tuple[int, int] | None = None  # ``_moment()`` of the last catch-up
        batch = self._observer.browser_id_batch
        self._catch_up = _Batched[str](
            self._caught_up, "browser-ids-catch-up", lambda n: batch("catch_up", n)
        )
        self._put = _Batched[tuple[str, str]](
            store.put_many, "browser-ids-write", lambda n: batch("write", n)
        )

    def close(self) -> None:
        """Let the batches' threads go (waiters still open are cancelled with their workers)."""
        self._catch_up.close()
        self._put.close()

    def _moment(self) -> tuple[int, int] | None:
        """What a catch-up covers: the assignments and failed writes before it started."""
        if self._assignments is None:
            return None
        return self._assignments(), self._failed_writes

    def _caught_up(self, visitors: list[str]) -> list[None]:
        moment = self._moment()  # before the ends are asked for
        self._store.catch_up()  # once for every visitor waiting
        self._caught_up_at = moment
        return [None] * len(visitors)

    async def send(self, body: bytes) -> Answer:
        """``Sender.send``: swap the body's placeholder for the visitor's browser id (made and
        stored first when new), then post; a failure to make or store it is the answer."""
        found = find_placeholder(body)
        if found is None:
            return await self._client.send(body)
        start, end, visitor = found
        # The visitor is known in the steady state: no coroutine for the lookup then.
        ref = self._store.get(visitor) or await self.browser_id(visitor)
        if isinstance(ref, Answer):
            return ref
        body = b"".join((body[:start], b'"browser_id":', _json_string(ref).encode(), body[end:]))
        return await self._client.send(body)

    async def browser_id(self, visitor: str) -> str | Answer:
        """The visitor's browser id (made and stored on first use), or why there is none."""
        ref = self._store.get(visitor)
        if ref is not None:
            return ref
        pending = self._pending.get(visitor)
        if pending is not None:  # a concurrent first event of this visitor is making it
            return await asyncio.shield(pending)
        future: asyncio.Future[str | Answer] = asyncio.get_running_loop().create_future()
        self._pending[visitor] = future
        try:
            result = await self._make(visitor)
            future.set_result(result)
            return result
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a waiter-less future must not warn
            raise
        finally:
            del self._pending[visitor]

    async def _make(self, visitor: str) -> str | Answer:
        try:
            moment = self._moment()
            if moment is None or moment != self._caught_up_at:
                await self._catch_up(visitor)  # with every other visitor waiting now
                ref = self._store.get(visitor)
                if ref is not None:
                    return ref
            answer = await self._client.create_browser_id()  # in this worker's slot
            if answer.outcome is not Outcome.DELIVERED or not answer.ref:
                return answer
            try:
                await self._put((visitor, answer.ref))  # one flush with the ids made meanwhile
            except TransientError:
                self._failed_writes += 1  # it may have landed: the next new visitor catches up
                raise
        except TransientError as exc:
            return Answer(Outcome.RETRYABLE, None, str(exc))
        self.created += 1
        self._observer.browser_id_created()
        return answer.ref
