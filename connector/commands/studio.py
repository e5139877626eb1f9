"""``cdp-connector studio``: a local page to write the mapping against real records.

The page (``studio_static/``, shipped in the package: no CDN, works offline)
holds the mapping in an editor and sends each change here; every answer is
:class:`~connector.commands.studio_session.StudioSession`'s work, so it shows
the compiler's and the record-path check's own messages, and the bodies
``map`` shows.

Safety, as Jupyter does it:

1. it binds to 127.0.0.1 unless ``--host`` says otherwise;
2. every request must carry the random token printed in the URL on start
   (``?token=`` or the ``X-Studio-Token`` header); anything else is 403, so
   another local user or a web page in the browser cannot drive it;
3. it never sends anything to the CDP and never shows a secret: the CDP
   credentials stay unread; Kafka is only read (without ``--input``, the
   latest records, without joining the group or committing).
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import secrets
import sys
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from connector.errors import ConfigError

if TYPE_CHECKING:  # the CLI imports this module for every command: the work loads on use
    from connector.commands.studio_session import StudioSession

__all__ = ["add_parser", "make_app", "run"]

_STATIC = ("studio.css", "studio.js")
_TYPES = {".css": "text/css", ".js": "text/javascript", ".html": "text/html"}
_TOKEN_HEADER = "X-Studio-Token"  # noqa: S105 - a header name, not a secret
# The page's own files only; no inline script runs, nothing loads from elsewhere.
_CSP = "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:"


_DESCRIPTION = """\
Serve a local page with the config's mapping in an editor and sample records
beside it. Every edit is compiled with run's checks; problems are marked on
their lines; each record shows the rule that matched and the exact JSON bodies,
or why it would be skipped or dead-lettered. Save as test case / save mapping
write the files back. Nothing is sent to the CDP.

The page listens on 127.0.0.1 and every request needs the token printed in the
URL on start. Without --input, the topic's latest records are read from Kafka
without joining the consumer group and without committing.
"""


def add_parser(sub: Any) -> None:
    """Register the ``studio`` subcommand on the CLI's subparsers."""
    parser = sub.add_parser(
        "studio",
        help="a local page to edit the mapping and see each record's events as you type",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, type=Path, help="connector YAML file")
    parser.add_argument(
        "--input",
        type=Path,
        help="sample records: JSON lines or an Avro container file "
        "(default: the topic's latest records, read from Kafka)",
    )
    parser.add_argument(
        "--topic",
        default=None,
        help="topic the records come from (default: the config's first topic)",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=20,
        help="without --input: how many of the topic's latest records to read (default 20)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, loopback)"
    )
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.set_defaults(func=run)


def _is_avro(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(4) == b"Obj\x01"  # an Avro object container file
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read input: {exc.strerror or exc}") from exc


def _read_input(path: Path) -> list[str]:
    """The records of a JSON lines file, one text each (the page edits them as text)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read input: {exc.strerror or exc}") from exc
    return [line.strip() for line in lines if line.strip()]


def _pretty(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except json.JSONDecodeError:
        return text  # shown as it is; the page reports why it cannot be read


def session_from_args(args: argparse.Namespace) -> StudioSession:
    """The session the command line describes (records read now)."""
    from connector.commands.dry_run import read_avro_file
    from connector.commands.studio_sample import latest_records, to_json
    from connector.commands.studio_session import StudioSession
    from connector.config import load_config

    settings = load_config(args.config)
    first = settings.topics[0]
    topic = args.topic or first.name or "clickstream"
    records_schema = None
    if args.input is not None and _is_avro(args.input):
        schema, decoded = read_avro_file(args.input)
        records = [json.dumps(to_json(schema, r), ensure_ascii=False) for r in decoded]
        records_schema = (schema, f"the schema of {args.input}")
    elif args.input is not None:
        records = _read_input(args.input)
    else:
        records = latest_records(settings, topic, args.count)
    texts = [_pretty(r) for r in records]
    return StudioSession(settings, topic, texts, records_schema=records_schema)


def make_app(session: StudioSession, token: str) -> web.Application:
    """The studio's web application; every route requires ``token``."""
    from connector.commands.studio_session import Conflict

    app = web.Application(middlewares=[_require_token(token)], client_max_size=4 * 1024 * 1024)
    static = resources.files("connector.commands") / "studio_static"

    async def page(_: web.Request) -> web.Response:
        html = (static / "index.html").read_text(encoding="utf-8")
        return web.Response(text=html.replace("{{token}}", token), content_type="text/html")

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in _STATIC:
            raise web.HTTPNotFound()
        body = (static / name).read_bytes()
        return web.Response(body=body, content_type=_TYPES[Path(name).suffix])

    async def state(_: web.Request) -> web.Response:
        return web.json_response(session.load())

    async def preview(request: web.Request) -> web.Response:
        body = await _json(request)
        # Compiling is quick but CPU work: off the loop, so the page's next request is served.
        answer = await asyncio.to_thread(
            session.preview, str(body.get("text", "")), [str(r) for r in body.get("records", [])]
        )
        return web.json_response(answer)

    async def save_mapping(request: web.Request) -> web.Response:
        body = await _json(request)
        try:
            new = session.save_mapping(str(body.get("text", "")), str(body.get("digest", "")))
        except Conflict as exc:
            return web.json_response({"error": str(exc)}, status=409)
        return web.json_response({"digest": new, "saved": str(session.mapping_path)})

    async def save_test(request: web.Request) -> web.Response:
        body = await _json(request)
        try:
            answer = await asyncio.to_thread(  # compiles, as a preview does: off the loop
                session.save_test_case,
                str(body.get("text", "")),
                str(body.get("record", "")),
                str(body.get("name", "")),
            )
        except (ConfigError, json.JSONDecodeError) as exc:
            return web.json_response({"error": str(exc)}, status=422)
        return web.json_response(answer)

    app.router.add_get("/", page)
    app.router.add_get("/static/{name}", asset)
    app.router.add_get("/api/state", state)
    app.router.add_post("/api/preview", preview)
    app.router.add_post("/api/save-mapping", save_mapping)
    app.router.add_post("/api/save-test", save_test)
    return app


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except json.JSONDecodeError as exc:
        raise web.HTTPBadRequest(text=f"not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="expected a JSON object")
    return body


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _require_token(token: str) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get(_TOKEN_HEADER) or request.query.get("token", "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise web.HTTPForbidden(text="cdp-connector studio: the URL's token is required\n")
        response = await handler(request)
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    return middleware


def run(args: argparse.Namespace) -> int:
    """Serve the studio until interrupted."""
    session = session_from_args(args)
    token = secrets.token_urlsafe(24)
    return asyncio.run(_serve(make_app(session, token), args.host, args.port, token))


async def _serve(app: web.Application, host: str, port: int, token: str) -> int:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]  # the free port the system chose for --port 0
    shown = f"[{host}]" if ":" in host else host
    print(f"cdp-connector studio: http://{shown}:{bound}/?token={token}", flush=True)
    print("  (nothing is sent to the CDP; Ctrl-C stops)", file=sys.stderr, flush=True)
    if host not in ("127.0.0.1", "::1", "localhost"):
        print(
            f"  warning: listening on {host}, not loopback: anyone who has the URL can "
            "edit and save the mapping",
            file=sys.stderr,
            flush=True,
        )
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
    return 0
