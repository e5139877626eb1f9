"""Browser-id placeholders: found exactly, filled in by a byte splice, one id per visitor."""

from __future__ import annotations

import asyncio
import json
import threading
import time

from connector.cdp import get_dialect
from connector.cdp.answer import Answer, Outcome
from connector.config.cdp import BrowserIdSettings
from connector.config.kafka import KafkaSettings
from connector.delivery.browser_ids import BrowserIdResolver, BrowserIdStore, find_placeholder
from connector.errors import TransientError
from connector.mapping.fields import BROWSER_ID_PLACEHOLDER

DIALECT = get_dialect("sitecore")


def body_for(visitor: str, page: str = "home") -> bytes:
    return DIALECT.validate_and_dump({
        "type": "VIEW", "channel": "WEB", "language": "EN", "currency": "EUR",
        "page": page, "pos": "p", "browser_id": BROWSER_ID_PLACEHOLDER + visitor,
    })  # fmt: skip


def test_placeholder_found_with_awkward_visitor_ids() -> None:
    for visitor in ("v-1", 'quote"and\\backslash\\', "ünïcode", "a\\"):
        start, end, found = find_placeholder(body_for(visitor)) or (0, 0, "")
        assert found == visitor
        assert body_for(visitor)[start:end].startswith(b'"browser_id":')


def test_a_page_that_looks_like_a_placeholder_is_not_taken_for_one() -> None:
    tricky = '"browser_id":"\\u0000browser_id_for:x"'
    body = body_for("real", page=tricky)
    assert find_placeholder(body)[2] == "real"  # type: ignore[index]
    assert find_placeholder(DIALECT.validate_and_dump(
        {**json.loads(body), "browser_id": "plain"}
    )) is None  # fmt: skip


class FakeStore:
    def __init__(self) -> None:
        self.ids: dict[str, str] = {}
        self.puts: list[tuple[str, str]] = []
        self.catch_ups = 0

    def get(self, visitor: str) -> str | None:
        return self.ids.get(visitor)

    def catch_up(self) -> None:
        self.catch_ups += 1

    def put(self, visitor: str, ref: str) -> None:
        self.puts.append((visitor, ref))
        self.ids[visitor] = ref

    def put_many(self, pairs: list[tuple[str, str]]) -> list[Exception | None]:
        out: list[Exception | None] = []
        for visitor, ref in pairs:
            try:
                self.put(visitor, ref)
                out.append(None)
            except Exception as exc:  # noqa: BLE001 - as the store answers: per pair
                out.append(exc)
        return out


class FlakyStore(FakeStore):
    """Its next ``failures`` writes fail as the broker would fail them: every pair."""

    failures = 0

    def put_many(self, pairs: list[tuple[str, str]]) -> list[Exception | None]:
        if self.failures:
            self.failures -= 1
            return [TransientError("broker down") for _ in pairs]
        return super().put_many(pairs)


class FakeClient:
    def __init__(self, create: list[Answer] | None = None) -> None:
        self.sent: list[bytes] = []
        self.created = 0
        self.create = create or []

    async def send(self, body: bytes) -> Answer:
        self.sent.append(body)
        return Answer(Outcome.DELIVERED, 201, "OK")

    async def create_browser_id(self) -> Answer:
        await asyncio.sleep(0.01)  # let concurrent first events pile up
        self.created += 1
        if self.create:
            return self.create.pop(0)
        return Answer(Outcome.DELIVERED, 201, "OK", ref=f"bid-{self.created}")


async def test_concurrent_first_events_of_a_visitor_make_one_id() -> None:
    client, store = FakeClient(), FakeStore()
    resolver = BrowserIdResolver(client, store)  # type: ignore[arg-type]
    answers = await asyncio.gather(*(resolver.send(body_for("v")) for _ in range(20)))
    assert all(a.outcome is Outcome.DELIVERED for a in answers)
    assert client.created == 1
    assert store.puts == [("v", "bid-1")]
    assert {json.loads(b)["browser_id"] for b in client.sent} == {"bid-1"}


async def test_the_id_is_stored_before_the_event_is_posted() -> None:
    order: list[str] = []
    client, store = FakeClient(), FakeStore()
    original_put, original_send = store.put, client.send

    def put(visitor: str, ref: str) -> None:
        order.append("put")
        original_put(visitor, ref)

    async def send(body: bytes) -> Answer:
        order.append("post")
        return await original_send(body)

    store.put = put  # type: ignore[method-assign]
    client.send = send  # type: ignore[method-assign]
    await BrowserIdResolver(client, store).send(body_for("v"))  # type: ignore[arg-type]
    assert order == ["put", "post"]


async def test_a_known_visitor_needs_no_request_and_other_bodies_pass_through() -> None:
    client, store = FakeClient(), FakeStore()
    store.ids["v"] = "known"
    resolver = BrowserIdResolver(client, store)  # type: ignore[arg-type]
    await resolver.send(body_for("v"))
    await resolver.send(b'{"type":"VIEW","browser_id":"plain"}')
    assert client.created == 0
    assert json.loads(client.sent[0])["browser_id"] == "known"
    assert client.sent[1] == b'{"type":"VIEW","browser_id":"plain"}'


async def test_a_failed_creation_is_the_events_answer_and_nothing_is_stored() -> None:
    refused = Answer(Outcome.FATAL, 401, "401: unknown client_key")
    client, store = FakeClient([refused]), FakeStore()
    resolver = BrowserIdResolver(client, store)  # type: ignore[arg-type]
    assert await resolver.send(body_for("v")) == refused
    assert store.puts == [] and client.sent == []
    assert (await resolver.send(body_for("v"))).outcome is Outcome.DELIVERED  # retried later


async def test_kafka_failure_is_retryable() -> None:
    class BrokenStore(FakeStore):
        def put(self, visitor: str, ref: str) -> None:
            raise TransientError("broker down")

    resolver = BrowserIdResolver(FakeClient(), BrokenStore())  # type: ignore[arg-type]
    answer = await resolver.send(body_for("v"))
    assert answer.outcome is Outcome.RETRYABLE and "broker down" in answer.reason


def test_store_get_answers_and_keeps_the_recently_used_ones() -> None:
    # get() reads without the lock; what it answers and the LRU order it keeps are unchanged.
    store = BrowserIdStore(KafkaSettings(), BrowserIdSettings(max_entries=2))
    store._remember("v1", "b1")
    store._remember("v2", "b2")
    assert store.get("v1") == "b1"  # v1 is now the most recently used
    assert store.get("nobody") is None
    store._remember("v3", "b3")  # evicts the least recently used: v2
    assert (store.get("v1"), store.get("v2"), store.get("v3")) == ("b1", None, "b3")
    store._remember("v1", None)  # a tombstone
    assert store.get("v1") is None
    assert len(store) == 1


def test_the_tailer_reads_on_after_any_failure() -> None:
    # Every catch-up waits for the tailer: a tailer ended by an unexpected exception would
    # hold every new visitor (and its partition's commit point) until the process ended.
    store = BrowserIdStore(KafkaSettings(), BrowserIdSettings())
    polls = iter([RuntimeError("unexpected"), None])

    def poll_once() -> None:
        outcome = next(polls, None)
        if outcome is not None:
            raise outcome
        store._remember("v1", "b1")
        store._stop.set()

    store._poll_once = poll_once  # type: ignore[method-assign]
    thread = threading.Thread(target=store._tail)
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    assert store.get("v1") == "b1"  # read after the failure


async def test_new_visitors_waiting_together_share_one_catch_up_and_one_write() -> None:
    class CountingStore(FakeStore):
        def __init__(self) -> None:
            super().__init__()
            self.writes: list[int] = []
            self.threads: set[str] = set()

        def catch_up(self) -> None:
            self.threads.add(threading.current_thread().name)
            self.catch_ups += 1
            time.sleep(0.02)  # a broker round trip: visitors keep arriving meanwhile

        def put_many(self, pairs: list[tuple[str, str]]) -> list[Exception | None]:
            self.threads.add(threading.current_thread().name)
            self.writes.append(len(pairs))
            return super().put_many(pairs)

    class TogetherClient(FakeClient):
        """Answers the creations once all 100 asked, in one turn of the loop (a sleep
        each ended over two turns on a busy box, and the ids took two writes)."""

        def __init__(self) -> None:
            super().__init__()
            self.asked = 0
            self.all_asked = asyncio.Event()

        async def create_browser_id(self) -> Answer:
            self.asked += 1
            if self.asked == 100:
                self.all_asked.set()
            await self.all_asked.wait()
            self.created += 1
            return Answer(Outcome.DELIVERED, 201, "OK", ref=f"bid-{self.created}")

    client, store = TogetherClient(), CountingStore()
    resolver = BrowserIdResolver(client, store)  # type: ignore[arg-type]
    visitors = [f"v{i}" for i in range(100)]
    answers = await asyncio.gather(*(resolver.send(body_for(v)) for v in visitors))
    assert all(a.outcome is Outcome.DELIVERED for a in answers)
    assert client.created == 100 and sorted(store.ids) == sorted(visitors)  # one id each
    assert store.catch_ups == 1  # every visitor waiting when it started
    assert sum(store.writes) == 100 and len(store.writes) == 1  # one produce + flush
    assert all(name.startswith("browser-ids-") for name in store.threads)  # not the default pool
    # Late arrivals (after a run started) wait for the next run, never for one per visitor.
    late = [asyncio.create_task(resolver.send(body_for(f"late{i}"))) for i in range(10)]
    await asyncio.sleep(0)
    more = [asyncio.create_task(resolver.send(body_for(f"later{i}"))) for i in range(10)]
    await asyncio.gather(*late, *more)
    assert store.catch_ups <= 3
    resolver.close()


async def test_an_id_made_but_not_written_is_retried_with_a_new_catch_up() -> None:
    client, store = FakeClient(), FlakyStore()
    store.failures = 1
    resolver = BrowserIdResolver(client, store)  # type: ignore[arg-type]
    first = await asyncio.gather(*(resolver.send(body_for(f"v{i}")) for i in range(3)))
    assert all(a.outcome is Outcome.RETRYABLE and "broker down" in a.reason for a in first)
    again = await asyncio.gather(*(resolver.send(body_for(f"v{i}")) for i in range(3)))
    assert all(a.outcome is Outcome.DELIVERED for a in again)
    resolver.close()


async def test_new_visitors_catch_up_once_per_assignment_and_after_a_failed_write() -> None:
    # Ids of a partition's visitors are made by its owner only: once a catch-up that
    # started after the assignment is done, the previous owner's ids are all read.
    client, store = FakeClient(), FlakyStore()
    assignments = 1
    resolver = BrowserIdResolver(client, store, assignments=lambda: assignments)  # type: ignore[arg-type]
    await resolver.send(body_for("v1"))
    await asyncio.gather(*(resolver.send(body_for(f"v{i}")) for i in range(2, 6)))
    assert (store.catch_ups, client.created) == (1, 5)  # the later visitors skipped it
    assignments += 1  # a rebalance gave this replica partitions someone else owned
    await resolver.send(body_for("v6"))
    await resolver.send(body_for("v7"))
    assert (store.catch_ups, client.created) == (2, 7)
    store.failures = 1  # the write's outcome is unknown: it may have landed
    assert (await resolver.send(body_for("v8"))).outcome is Outcome.RETRYABLE
    assert store.catch_ups == 2
    await resolver.send(body_for("v8"))
    await resolver.send(body_for("v9"))
    assert (store.catch_ups, sorted(store.ids)) == (3, [f"v{i}" for i in range(1, 10)])
    resolver.close()


async def test_without_assignments_every_new_visitor_catches_up() -> None:
    # replay-dlq reads records of partitions a running connector owns: no shortcut.
    client, store = FakeClient(), FakeStore()
    resolver = BrowserIdResolver(client, store)  # type: ignore[arg-type]
    for visitor in ("v1", "v2", "v3"):
        await resolver.send(body_for(visitor))
    assert (store.catch_ups, client.created) == (3, 3)
    resolver.close()
