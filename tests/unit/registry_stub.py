"""A tiny schema-registry stand-in on loopback for unit tests: canned answers per path."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/apis/ccompat/v7"


@dataclass
class StubRegistry:
    url: str
    answers: dict[str, tuple[int, object]] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, auth header)

    def serve_schema(self, schema_id: int, schema: object, **extra: object) -> None:
        body = {"schema": json.dumps(schema), **extra}
        self.answers[f"/schemas/ids/{schema_id}"] = (200, body)


@contextmanager
def stub_registry() -> Iterator[StubRegistry]:
    stub = StubRegistry(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.removeprefix(PREFIX)
            stub.requests.append((path, self.headers.get("Authorization")))
            status, body = stub.answers.get(
                path, (404, {"error_code": 40403, "message": "Schema not found"})
            )
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stub.url = f"http://127.0.0.1:{server.server_address[1]}{PREFIX}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
