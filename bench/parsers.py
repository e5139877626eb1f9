"""Other response parsers for ``bench.client_bench --parser``: what llhttp was measured against.

``hand``: the hand-written parser ``connector/cdp/http1.py`` had before it moved to
llhttp (httptools), kept verbatim here so the comparison can be run again; ``h11``: the
reference pure-Python parser (installed on demand, not a dependency). Both speak the
``connector.cdp.http1_parser.Parser`` interface.
"""

from __future__ import annotations

from typing import Any

from connector.cdp.http1_parser import MAX_BODY, MAX_HEAD, Http1Error, Response

__all__ = ["PARSERS"]


class HandParser:
    """The hand-written parser, as it was (status line, headers, Content-Length, chunked)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.keep_alive = True

    def start(self) -> None:
        self.buffer.clear()

    def feed(self, data: bytes) -> Response | None:
        self.buffer += data
        return self._parse(False)

    def finish(self) -> Response | None:
        self.keep_alive = False
        return self._parse(True)

    def _parse(self, eof: bool) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """A whole answer from the buffer, or None while more bytes are needed.

        Header lines are only decoded into the returned list for answers of 300 and
        above (what ``Http1Pool`` hands on); framing headers are read from every one."""
        buf = self.buffer
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                raise Http1Error("answer headers too large")
            return None
        lines = bytes(buf[:end]).split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise Http1Error(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        status = int(parts[1])
        keep = status >= 300
        headers: list[tuple[str, str]] = []
        length: int | None = None
        chunked = False
        for line in lines[1:]:
            name, sep, raw = line.partition(b":")
            if not sep:
                raise Http1Error(f"malformed header line: {line[:80]!r}")
            if keep:
                headers.append((name.decode("latin-1"), raw.strip().decode("latin-1")))
            size = len(name)  # only three names matter for framing; test the length first
            if size == 14 and name.lower() == b"content-length":
                value = raw.strip()
                if not value.isdigit():
                    raise Http1Error(f"bad Content-Length: {value[:40]!r}")
                length = int(value)
            elif size == 17 and name.lower() == b"transfer-encoding":
                chunked = b"chunked" in raw.lower()
            elif size == 10 and name.lower() == b"connection" and b"close" in raw.lower():
                self.keep_alive = False
        if parts[0] == b"HTTP/1.0":
            self.keep_alive = False
        start = end + 4
        if 100 <= status < 200:  # an interim answer (no Expect sent, but legal): skip it
            del buf[:start]
            return self._parse(eof) if buf else None
        if status in (204, 304):
            body = b""
        elif chunked:
            decoded = _dechunk(buf, start)
            if decoded is None:
                return None
            body = decoded
        elif length is not None:
            if length > MAX_BODY:
                raise Http1Error(f"answer body too large ({length} bytes)")
            if len(buf) - start < length:
                return None
            body = bytes(buf[start : start + length])
        else:  # framed by the connection closing
            self.keep_alive = False
            if not eof:
                if len(buf) - start > MAX_BODY:
                    raise Http1Error("answer body too large")
                return None
            body = bytes(buf[start:])
        buf.clear()
        return status, headers, body


def _dechunk(buf: bytearray, pos: int) -> bytes | None:
    """The body of a complete chunked message starting at ``pos``, None if incomplete."""
    out = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size_text = bytes(buf[pos:eol]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise Http1Error(f"bad chunk size {size_text[:20]!r}") from None
        if size == 0:
            trailer_end = buf.find(b"\r\n", eol + 2)
            while trailer_end >= 0 and trailer_end != eol + 2:
                eol, trailer_end = trailer_end, buf.find(b"\r\n", trailer_end + 2)
            return None if trailer_end < 0 else bytes(out)
        if len(out) + size > MAX_BODY:
            raise Http1Error("answer body too large")
        data_end = eol + 2 + size
        if len(buf) < data_end + 2:
            return None
        out += buf[eol + 2 : data_end]
        pos = data_end + 2


class H11Parser:
    """h11's client state machine; a dummy request is "sent" per answer so it reads one."""

    def __init__(self) -> None:
        import h11

        self._h11 = h11
        self._conn: Any = None
        self.keep_alive = True
        self._status = 0
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []

    def start(self) -> None:
        h11 = self._h11
        if self._conn is None or self._conn.our_state is h11.MUST_CLOSE:
            self._conn = h11.Connection(h11.CLIENT)
        else:
            self._conn.start_next_cycle()
        self._conn.send(h11.Request(method="POST", target="/", headers=[("Host", "x")]))
        self._conn.send(h11.EndOfMessage())
        self._body = []

    def feed(self, data: bytes) -> Response | None:
        self._conn.receive_data(data)
        return self._events()

    def finish(self) -> Response | None:
        self.keep_alive = False
        self._conn.receive_data(b"")
        return self._events()

    def _events(self) -> Response | None:
        h11 = self._h11
        while True:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                self.keep_alive = False
                raise Http1Error(str(exc)) from None
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return None
            if isinstance(event, h11.Response):
                self._status = event.status_code
                self._headers = [(n.decode(), v.decode()) for n, v in event.headers]
            elif isinstance(event, h11.Data):
                self._body.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                if self._conn.their_state is not h11.DONE or self._conn.our_state is not h11.DONE:
                    self.keep_alive = False
                headers = self._headers if self._status >= 300 else []
                return self._status, headers, b"".join(self._body)
            elif isinstance(event, h11.ConnectionClosed):
                return None


PARSERS: dict[str, Any] = {"hand": HandParser, "h11": H11Parser}
