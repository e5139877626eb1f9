"""Reading one HTTP/1.1 answer from the bytes of a socket: ``ResponseParser``.

The builtin client (``connector.cdp.http1``) feeds each read to ``feed`` and gets the
whole answer back once it is complete: ``(status, headers, body)``. The parsing is
llhttp's (Node's parser) through ``httptools``, not our own: a proxy, a load balancer
or an edge in front of the API answers in ways the sandbox never does, and llhttp is
written and fuzzed for exactly that. It costs no more CPU than the hand-written parser
it replaced (docs/benchmarks.md, "The response parser").

What this module adds around llhttp:

1. Framing the parser cannot see alone: an answer framed by the connection closing
   ends at ``finish`` (EOF); interim 1xx answers are skipped.
2. Limits: ``MAX_HEAD`` bytes of status line and headers, ``MAX_BODY`` bytes of body.
3. One error type, ``Http1Error`` (a ``ConnectionError``, so retryable for the
   caller), for everything that is not an answer we can read; after it, and after an
   answer followed by stray bytes, ``keep_alive`` is False: the socket is dropped.

Headers are decoded into the returned list only for answers of 300 and above (what the
caller classifies with: Retry-After, Location); a 2xx answer's are not built.
"""

from __future__ import annotations

from typing import Protocol

import httptools

from connector.errors import InternalError

__all__ = ["MAX_BODY", "MAX_HEAD", "Http1Error", "Parser", "Response", "ResponseParser"]

MAX_HEAD = 64 * 1024
MAX_BODY = 4 * 1024 * 1024

Response = tuple[int, list[tuple[str, str]], bytes]


class Http1Error(InternalError, ConnectionError):
    """The server's answer is not HTTP/1.1 we can read; the connection is dropped."""


class Parser(Protocol):
    """What a connection needs of a parser (``ResponseParser``; a bench has others)."""

    keep_alive: bool

    def start(self) -> None:
        """A new request was sent."""

    def feed(self, data: bytes) -> Response | None:
        """The answer once ``data`` completes it, else None; Http1Error if broken."""

    def finish(self) -> Response | None:
        """EOF: the answer if it ended there, else None."""


class ResponseParser:
    """The answers to the requests sent on one connection, one at a time.

    ``start`` before each request; then ``feed`` every read until it returns the
    answer, or ``finish`` at EOF. Both raise ``Http1Error`` for a broken answer.
    """

    __slots__ = (
        "_body",
        "_body_size",
        "_complete",
        "_done",
        "_framed",
        "_head_size",
        "_headers",
        "_headers_done",
        "_parser",
        "_status",
        "_status_seen",
        "keep_alive",
    )

    def __init__(self) -> None:
        self.keep_alive = True
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._body_size = 0
        self._head_size = 0
        self._headers_done = False
        self._complete = False
        self._framed = False  # Content-Length or chunked: the end is in the bytes
        self._status = 0
        self._status_seen = False
        self._done: tuple[list[tuple[bytes, bytes]], list[bytes]] = ([], [])

    def start(self) -> None:
        """A new request was sent: forget the previous answer."""
        self._headers.clear()
        self._body.clear()
        self._body_size = self._head_size = 0
        self._headers_done = self._complete = self._framed = self._status_seen = False

    def feed(self, data: bytes) -> Response | None:
        """The answer once ``data`` completes it; None while more bytes are needed."""
        if not self._headers_done:
            self._head_size += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.keep_alive = False
            raise Http1Error("the server switched protocols (upgrade): not HTTP/1.1") from None
        except httptools.HttpParserError as exc:
            self.keep_alive = False
            if self._complete:  # a whole answer, then bytes that are none: keep the answer
                return self._answer()
            if isinstance(exc.__context__, Http1Error):  # raised by a callback below
                raise exc.__context__ from None
            detail = (str(exc) or type(exc).__name__)[:120]
            if not self._status_seen and not self._parser.get_status_code():
                raise Http1Error(f"not an HTTP/1.x status line ({detail}): {data[:60]!r}") from None
            where = "body" if self._headers_done else "header"
            raise Http1Error(f"malformed answer {where}: {detail}") from None
        if self._complete:
            return self._answer()
        if not self._headers_done and self._head_size > MAX_HEAD:
            self.keep_alive = False
            raise Http1Error("answer headers too large")
        return None

    def finish(self) -> Response | None:
        """The server closed the connection: the answer if its body ended there."""
        self.keep_alive = False
        if self._complete:
            return self._answer()
        if self._headers_done and not self._framed:
            return self._answer()  # framed by the connection closing
        return None

    def _answer(self) -> Response:
        status = self._status
        raw_headers, chunks = self._done if self._complete else (self._headers, self._body)
        headers = (
            [(n.decode("latin-1"), v.decode("latin-1").strip()) for n, v in raw_headers]
            if status >= 300
            else []
        )
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._complete = False
        return status, headers, body

    # -- llhttp's callbacks ----------------------------------------------------

    def on_message_begin(self) -> None:
        """llhttp: a message starts; after a whole answer, bytes nobody asked for."""
        if self._complete:  # bytes after the answer: no request asked for them
            self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        """llhttp: one header line (kept raw; decoded only for answers of 300 and above)."""
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        """llhttp: the head is read; note the status, keep-alive and framing."""
        if self._complete:  # a second answer nobody asked for: keep_alive is False already
            return
        parser = self._parser
        status = parser.get_status_code()
        self._status_seen = True
        if 100 <= status < 200:  # an interim answer (no Expect sent, but legal): skip it
            self._headers.clear()
            self._head_size = 0
            return
        self._status = status
        self._headers_done = True
        if not parser.should_keep_alive():
            self.keep_alive = False
        for name, value in self._headers:
            size = len(name)  # only two names tell the framing; test the length first
            if (size == 14 and name.lower() == b"content-length") or (
                size == 17 and name.lower() == b"transfer-encoding" and b"chunked" in value.lower()
            ):
                self._framed = True

    def on_body(self, body: bytes) -> None:
        """llhttp: a piece of the (de-chunked) body; refused past ``MAX_BODY``."""
        self._body_size += len(body)
        if self._body_size > MAX_BODY:
            self.keep_alive = False
            raise Http1Error("answer body too large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        """llhttp: the answer is whole (or a skipped 1xx ended)."""
        if self._headers_done and not self._complete:  # not the end of a skipped 1xx
            self._complete = True
            # Set aside: bytes after the answer must not add to it (they are dropped).
            self._done = (self._headers, self._body)
            self._headers, self._body = [], []
