"""The response parser against what proxies and edges send: every split, broken framing.

Whatever the bytes, ``ResponseParser`` returns None (more needed), one whole answer,
or raises ``Http1Error`` (a ConnectionError: retryable for the caller) — never another
exception, never the same answer twice, and after anything odd the connection is not
kept (``keep_alive`` False). The pool-level tests at the end show what a caller sees.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.cdp import http1_parser
from connector.cdp.http1 import Http1Pool
from connector.cdp.http1_parser import MAX_HEAD, Http1Error, Response, ResponseParser

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b'5;ext=1;q="a b"\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\nX-More: 2\r\n\r\n'
)
#: (answer bytes, what it parses to, whether the connection stays usable)
WELL_FORMED: list[tuple[bytes, Response, bool]] = [
    (b'HTTP/1.1 201 Created\r\nContent-Length: 13\r\n\r\n{"ref":"r-1"}',
     (201, [], b'{"ref":"r-1"}'), True),
    (CHUNKED, (200, [], b"hello world"), True),
    (b"HTTP/1.1 100 Continue\r\n\r\n"
     b"HTTP/1.1 429 Slow\r\nRetry-After: 3\r\nContent-Length: 0\r\n\r\n",
     (429, [("Retry-After", "3"), ("Content-Length", "0")], b""), True),
    (b"HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n", (204, [], b""), True),
    (b"HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbusy",
     (503, [("Connection", "close"), ("Content-Length", "4")], b"busy"), False),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", (200, [], b"ok"), False),
]  # fmt: skip


def parse_all(pieces: list[bytes], *, eof: bool = False) -> list[Response]:
    """Every answer the parser hands back for ``pieces`` fed in order (then EOF)."""
    parser = ResponseParser()
    parser.start()
    answers = [a for piece in pieces if (a := parser.feed(piece)) is not None]
    if eof and (last := parser.finish()) is not None:
        answers.append(last)
    return answers


@pytest.mark.parametrize(("raw", "expected", "keep"), WELL_FORMED)
def test_every_split_point_gives_the_answer_once(
    raw: bytes, expected: Response, keep: bool
) -> None:
    for cut in range(len(raw) + 1):
        parser = ResponseParser()
        parser.start()
        first = parser.feed(raw[:cut])
        second = parser.feed(raw[cut:])
        assert [a for a in (first, second) if a is not None] == [expected], cut
        assert parser.keep_alive is keep


@pytest.mark.parametrize(("raw", "expected", "keep"), WELL_FORMED)
def test_byte_by_byte_gives_the_answer_once(raw: bytes, expected: Response, keep: bool) -> None:
    assert parse_all([raw[i : i + 1] for i in range(len(raw))]) == [expected]


@FUZZ
@given(st.data())
def test_random_splits_of_consecutive_answers(data: st.DataObject) -> None:
    """Answers to several requests on one connection, each cut anywhere."""
    parser = ResponseParser()
    for raw, expected, keep in data.draw(st.lists(st.sampled_from(WELL_FORMED), max_size=4)):
        cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=5)))
        pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
        parser.start()
        got = [a for p in pieces if (a := parser.feed(p)) is not None]
        assert got == [expected]
        if not keep:
            break


def test_chunked_answer_closed_mid_body_is_no_answer() -> None:
    for cut in range(CHUNKED.index(b"\r\n\r\n") + 4, len(CHUNKED)):
        assert parse_all([CHUNKED[:cut]], eof=True) == [], cut


def test_body_shorter_than_content_length_is_no_answer() -> None:
    raw = b"HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\nshort"
    parser = ResponseParser()
    parser.start()
    assert parser.feed(raw) is None
    assert parser.finish() is None  # the connection turns it into a ConnectionError
    assert not parser.keep_alive


def test_body_longer_than_content_length_keeps_the_answer_drops_the_connection() -> None:
    for extra in (b"junk", b"HTTP/1.1 500 Oops\r\nContent-Length: 2\r\n\r\nno", b"\x00\xff"):
        parser = ResponseParser()
        parser.start()
        answer = parser.feed(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok" + extra)
        assert answer == (201, [], b"ok")
        assert not parser.keep_alive, extra


def test_answer_framed_by_close_ends_at_eof() -> None:
    raw = b"HTTP/1.1 502 Bad Gateway\r\nServer: edge\r\n\r\n<html>upstream down</html>"
    for cut in range(len(raw) + 1):
        assert parse_all([raw[:cut], raw[cut:]], eof=True) == [
            (502, [("Server", "edge")], b"<html>upstream down</html>")
        ]


MALFORMED = [
    b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
    b"HTTP/1.1 2011 Created\r\n\r\n",
    b"HTTP/1.1 abc OK\r\n\r\n",
    b"HTTP/2 200\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: x1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nBad\x00Name: x\r\n\r\n",
]


@pytest.mark.parametrize("raw", MALFORMED)
def test_malformed_answers_are_a_clear_retryable_error(raw: bytes) -> None:
    parser = ResponseParser()
    parser.start()
    with pytest.raises(Http1Error) as caught:
        parser.feed(raw)
    assert isinstance(caught.value, ConnectionError)  # what the transports retry
    assert str(caught.value)
    assert not parser.keep_alive


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 " + b"x" * (MAX_HEAD + 1),
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"y" * (MAX_HEAD + 1),
        b"HTTP/1.1 200 OK\r\n" + b"X-Many: 1\r\n" * (MAX_HEAD // 10),
    ],
)
def test_oversized_heads_are_refused(raw: bytes) -> None:
    parser = ResponseParser()
    parser.start()
    with pytest.raises(Http1Error, match="too large"):
        for i in range(0, len(raw), 4096):
            parser.feed(raw[i : i + 4096])


def test_oversized_body_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http1_parser, "MAX_BODY", 8)
    for raw in (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n123456789", CHUNKED):
        parser = ResponseParser()
        parser.start()
        with pytest.raises(Http1Error, match="too large"):
            parser.feed(raw)


@FUZZ
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=4))
def test_arbitrary_bytes_never_crash(raw: bytes, cuts: list[int]) -> None:
    _survives(raw, cuts)


@FUZZ
@given(st.sampled_from(WELL_FORMED), st.data())
def test_mutated_answers_never_crash(
    case: tuple[bytes, Response, bool], data: st.DataObject
) -> None:
    raw = bytearray(case[0])
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        action = data.draw(st.sampled_from(["flip", "drop", "dup"]))
        if action == "flip":
            raw[at] = data.draw(st.integers(0, 255))
        elif action == "drop":
            del raw[at]
        else:
            raw[at:at] = raw[at : at + data.draw(st.integers(1, 8))]
    _survives(bytes(raw), data.draw(st.lists(st.integers(0, len(raw)), max_size=4)))


def _survives(raw: bytes, cuts: list[int]) -> None:
    """None, one answer, or Http1Error; at EOF at most that one answer."""
    cuts = sorted(c for c in cuts if c <= len(raw))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    parser = ResponseParser()
    parser.start()
    answers: list[Response] = []
    try:
        for piece in pieces:
            if (answer := parser.feed(piece)) is not None:
                answers.append(answer)
                break  # the caller stops reading for this request here
        else:
            if (answer := parser.finish()) is not None:
                answers.append(answer)
    except Http1Error:
        assert not parser.keep_alive
        return
    assert len(answers) <= 1
    for status, headers, body in answers:
        assert 200 <= status <= 999
        assert isinstance(body, bytes)
        assert all(isinstance(n, str) and isinstance(v, str) for n, v in headers)


# -- what the pool makes of it ----------------------------------------------------


class _Served:
    def __init__(self, server: asyncio.Server, writers: list[asyncio.StreamWriter]) -> None:
        self.server = server
        self.writers = writers

    async def close(self) -> None:
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()
        await asyncio.sleep(0.01)  # let the closed transports finish


async def _serve(answers: list[list[bytes]], *, close: bool = False) -> tuple[_Served, str]:
    """A server that writes ``answers[n]`` (its pieces) for the n-th request it reads."""
    served = 0
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        writers.append(writer)
        try:
            while served < len(answers):
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                pieces, served = answers[served], served + 1
                for piece in pieces:
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.001)
                if close:
                    break
            if not close:
                await reader.read()  # until the client goes
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return _Served(server, writers), f"http://127.0.0.1:{port}/v1.2/events"


async def test_a_forged_second_answer_is_never_taken_for_the_next_request() -> None:
    ok = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    forged = b"HTTP/1.1 202 Accepted\r\nContent-Length: 6\r\n\r\nforged"
    busy = b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy"
    server, url = await _serve([[ok + forged], [busy]])
    pool = Http1Pool(url, {})
    try:
        assert (await pool.post(b"{}"))[::2] == (201, b"ok")
        # The connection that carried the extra answer is dropped, so the second
        # request gets its own answer on a new one, not the forged 201.
        assert (await pool.post(b"{}"))[::2] == (503, b"busy")
    finally:
        await pool.close()
        await server.close()


async def test_connection_closed_mid_body_is_a_retryable_error_not_resent() -> None:
    cut = b"HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\nhalf"
    server, url = await _serve([[cut]], close=True)
    pool = Http1Pool(url, {})
    try:
        with pytest.raises(ConnectionError, match="closed"):
            await pool.post(b"{}")
        assert pool.stale_retries == 0  # a byte came: the request may have been taken
    finally:
        await pool.close()
        await server.close()


async def test_a_partial_answer_that_never_ends_times_out() -> None:
    server, url = await _serve([[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhe"]])
    pool = Http1Pool(url, {}, timeout=0.2)
    try:
        with pytest.raises(TimeoutError):
            await pool.post(b"{}")
    finally:
        await pool.close()
        await server.close()
