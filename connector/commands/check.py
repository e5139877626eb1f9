"""``cdp-connector check``: is this config ready to run? Config, mapping, and every outside part.

Each check is a named function that returns a one-line detail when it passes and
raises ``CheckFailed`` (or any exception) when it does not. Checks run at once,
each on its own daemon thread bounded by ``--timeout``; the command prints a table
and exits 0 when everything passed, 2 when the config, the mapping or its record
paths are refused (what ``run`` refuses at start-up with exit code 2), else 1 when
anything failed.

The CDP check must prove the credentials without creating data on a real tenant,
so it posts a deliberately empty event (``{}``): the Stream API authenticates
before it validates, so it answers 400 (credentials accepted, event invalid) or
401/403 (credentials refused). The sandbox behaves the same way.

To add checks (another dialect's per-point-of-sale probe, say), append a builder
``(Settings) -> Iterable[Check]`` to ``CHECK_BUILDERS``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.cdp.client import Outcome
from connector.config import Settings, load_config, read_secret
from connector.errors import ConfigError, ConnectorError, TransientError
from connector.http_auth import basic_auth_header
from connector.kafka.topics import CredentialsRefused, cluster_metadata

__all__ = ["CHECK_BUILDERS", "Check", "CheckFailed", "CheckResult", "main", "redact", "run_checks"]


class CheckFailed(ConnectorError):
    """A check did not pass; the message is the reason shown in the table."""


@dataclass(frozen=True)
class Check:
    """One named check; ``run(settings, timeout)`` returns a detail or raises."""

    name: str
    run: Callable[[Settings, float], str]


@dataclass(frozen=True)
class CheckResult:
    """One row of the table: the check, passed or not, the detail, the time taken."""

    name: str
    ok: bool
    detail: str
    seconds: float
    refused: bool = False  # a ConfigError: what `run` would refuse at start-up (exit 2)


# -- the checks ------------------------------------------------------------------------


def _mapping(settings: Settings, _timeout: float) -> str:
    from connector.pipeline import build_mapper

    build_mapper(settings)  # ConfigError names file:line, rule and field
    return f"{settings.mapping} compiles for dialect {settings.cdp.dialect}"


def _record_paths(settings: Settings, _timeout: float) -> str:
    from connector.pipeline import build_mapper
    from connector.settle.record_paths import check_record_paths

    report = check_record_paths(settings, build_mapper(settings))  # ConfigError: the errors
    lines = [f"checked {', '.join(report.checked)}" if report.checked else "nothing to check"]
    return "\n".join(lines + [f"warning: {w}" for w in report.warnings])


def _metadata(settings: Settings, timeout: float) -> Any:  # ClusterMetadata (not exported)
    # The logger is never polled: librdkafka's connection chatter stays out of the output.
    logger = logging.getLogger("connector.commands.check.librdkafka")
    try:
        return cluster_metadata(settings.kafka, timeout, logger)
    except (CredentialsRefused, TransientError) as exc:
        raise CheckFailed(str(exc)) from exc


def _broker(settings: Settings, timeout: float) -> str:
    md = _metadata(settings, timeout)
    return f"{len(md.brokers)} broker(s) answered; cluster {md.cluster_id}"


def _topic_check(name: str, *, pattern: bool = False) -> Check:
    def run(settings: Settings, timeout: float) -> str:
        topics = _metadata(settings, timeout).topics
        if pattern:
            regex = re.compile(name.lstrip("^"))
            found = sorted(t for t in topics if regex.fullmatch(t))
            if not found:
                raise CheckFailed(f"no topic matches pattern {name!r}")
            return f"matches {', '.join(found[:5])}{' ...' if len(found) > 5 else ''}"
        meta = topics.get(name)
        if meta is None:
            raise CheckFailed(f"topic {name!r} does not exist")
        if meta.error is not None:
            raise CheckFailed(f"topic {name!r}: {meta.error.str()}")
        return f"{len(meta.partitions)} partition(s)"

    label = f"topic {name}" if not pattern else f"topics ~ {name}"
    return Check(label, run)


def _dead_letter_topic(settings: Settings, timeout: float) -> str:
    from connector.settle.deadletter import ensure_topic

    return ensure_topic(settings, timeout, validate_only=True)  # what `run` does, dry


def _registry(settings: Settings, timeout: float) -> str:
    reg = settings.schema_registry
    assert reg is not None  # noqa: S101 - only built when configured
    request = urllib.request.Request(reg.url.rstrip("/") + "/subjects")  # noqa: S310 - http(s) checked by RegistryClient
    if (auth := reg.basic_auth()) is not None:
        request.add_header("Authorization", basic_auth_header(*auth))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            subjects = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            if exc.code in (401, 403):
                raise CheckFailed(f"credentials refused (HTTP {exc.code})") from exc
            raise CheckFailed(f"GET /subjects answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise CheckFailed(f"unreachable: {cause}") from exc
    except ValueError as exc:
        raise CheckFailed("GET /subjects did not answer JSON (is the URL the API root?)") from exc
    count = len(subjects) if isinstance(subjects, list) else "?"
    return f"{reg.url} answered; {count} subject(s)"


PROBE_BODY = b"{}"  # authenticated but invalid: answered 400, never stored


def _cdp(settings: Settings, timeout: float) -> str:
    from connector.pipeline import build_client

    client = build_client(settings)  # ConfigError when a key or token is missing

    async def probe() -> str:
        async with client:
            answer = await client.send(PROBE_BODY)
        status = answer.status
        if answer.outcome is Outcome.PERMANENT and status == 400:
            return f"credentials accepted at {client.url} (HTTP 400 for the empty probe event)"
        if answer.outcome is Outcome.DELIVERED:
            return f"credentials accepted at {client.url} (HTTP {status}; empty event accepted)"
        if status in (401, 403):
            raise CheckFailed(f"credentials refused (HTTP {status}) at {client.url}")
        what = "no answer" if status is None else f"HTTP {status}"
        raise CheckFailed(f"{what} from {client.url}: {answer.reason}")

    return asyncio.run(asyncio.wait_for(probe(), timeout))


#: Checks whose ConfigError `run` would refuse to start with (exit code 2 for `check` too).
REFUSED_AT_START = frozenset({"mapping", "record paths"})


def default_checks(settings: Settings) -> Iterable[Check]:
    """The checks every config gets: mapping, record paths, broker, each topic, the
    dead-letter topic, the schema registry (when configured), the CDP credentials."""
    yield Check("mapping", _mapping)
    yield Check("record paths", _record_paths)
    yield Check("kafka broker", _broker)
    for spec in settings.topics:
        if spec.pattern is not None:
            yield _topic_check(spec.pattern, pattern=True)
        else:
            yield _topic_check(str(spec.name))
    yield Check(f"dead-letter topic {settings.dead_letter.topic}", _dead_letter_topic)
    if settings.schema_registry is not None:
        yield Check("schema registry", _registry)
    yield Check("cdp credentials", _cdp)


GUEST_NOTE = "the probe created one anonymous guest (a new browser id) in the tenant"


def _pos_check(pos: str) -> Check:
    """One probe event for ``pos`` (connector/cdp/probe.py says what it can and cannot see)."""

    def run(settings: Settings, timeout: float) -> str:
        from connector.cdp.dialect import get_dialect
        from connector.cdp.probe import probe_points_of_sale
        from connector.pipeline import build_client

        client = build_client(settings)

        async def probe() -> str:
            async with client:
                [verdict] = await probe_points_of_sale(
                    client,
                    get_dialect(settings.cdp.dialect),
                    [pos],
                    sandbox_url=settings.cdp.base_url,
                )
            # The probe asked the CDP for a browser id first: that is a new anonymous guest
            # in the tenant, whatever the verdict, and the operator should know it.
            detail = f"{verdict.detail}; {GUEST_NOTE}"
            if not verdict.ok:
                raise CheckFailed(detail)
            return detail

        return asyncio.run(asyncio.wait_for(probe(), timeout))

    return Check(f"point of sale {pos}", run)


def pos_checks(settings: Settings) -> Iterable[Check]:
    """``cdp.points_of_sale``: is each one known to the tenant (an unknown one is dropped)?"""
    for pos in settings.cdp.points_of_sale:
        yield _pos_check(pos)


#: Builders of the checks to run; extend with more (e.g. a dialect's own probes).
CHECK_BUILDERS: list[Callable[[Settings], Iterable[Check]]] = [default_checks, pos_checks]


# -- running them ----------------------------------------------------------------------


def run_checks(settings: Settings, checks: Sequence[Check], timeout: float) -> list[CheckResult]:
    """Run every check at once; each is bounded by ``timeout`` (plus a little slack)."""
    results: dict[int, CheckResult] = {}
    threads: list[tuple[int, Check, threading.Thread, float]] = []

    def runner(index: int, check: Check, started: float) -> None:
        refused = False
        try:
            detail = check.run(settings, timeout)
            ok = True
        except CheckFailed as exc:
            detail, ok = str(exc), False
        except ConfigError as exc:
            detail, ok, refused = str(exc), False, check.name in REFUSED_AT_START
        except Exception as exc:  # noqa: BLE001 - any failure is a failed check, shown as such
            detail, ok = f"{type(exc).__name__}: {exc}", False
        seconds = time.monotonic() - started
        results[index] = CheckResult(check.name, ok, detail, seconds, refused)

    for index, check in enumerate(checks):
        started = time.monotonic()
        thread = threading.Thread(
            target=runner, args=(index, check, started), name=f"check-{index}", daemon=True
        )
        thread.start()
        threads.append((index, check, thread, started))
    deadline = time.monotonic() + timeout + 2.0
    for index, check, thread, started in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
        if index not in results:  # still running: abandoned (a daemon thread)
            results[index] = CheckResult(
                check.name, False, f"timed out after {timeout:g}s", time.monotonic() - started
            )
    return [results[i] for i in range(len(checks))]


# A secret is masked where it stands as a token: bounded by the text's ends or by a
# character that is not a letter, digit or "_" (so "K" is masked in "key=K" but not in
# the cluster id "7pABualZKoG8G46"). A long secret inside a longer word is still that
# secret (URL-encoded after "%3D", say) and cannot occur there by chance: masked anywhere.
_SHORT_SECRET = 8
_WORD = r"[A-Za-z0-9_]"


def redact(text: str, secrets: Iterable[str]) -> str:
    """Defence in depth: mask each whole secret value (``***``) wherever it is a token.

    Secrets shorter than ``_SHORT_SECRET`` characters only as whole tokens, longer ones
    wherever they occur; longer secrets first, so one that contains another goes whole.
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        pattern = re.escape(secret)
        if len(secret) < _SHORT_SECRET:
            pattern = rf"(?<!{_WORD}){pattern}(?!{_WORD})"
        text = re.sub(pattern, "***", text)
    return text


def known_secrets(settings: Settings) -> list[str]:
    """The secret values the config names (those that can be read), for ``redact``."""
    values: list[str] = []
    candidates = [
        (settings.cdp.client_key_env, settings.cdp.client_key_file),
        (settings.cdp.api_token_env, settings.cdp.api_token_file),
        (settings.kafka.sasl_password_env, settings.kafka.sasl_password_file),
    ]
    if settings.schema_registry is not None:
        candidates.append((settings.schema_registry.password_env, None))
    for env, file in candidates:
        try:
            secret = read_secret(env, file, "secret")
        except ConfigError:
            continue
        if secret is not None:
            values.append(secret.get_secret_value())
    return values


def format_table(results: Sequence[CheckResult]) -> str:
    """The results as the aligned table ``check`` prints (detail lines under DETAIL)."""
    width = max([len("CHECK"), *(len(r.name) for r in results)])
    lines = [f"{'CHECK':<{width}}  RESULT  TIME    DETAIL"]
    for r in results:
        mark = "ok" if r.ok else "FAIL"
        first, *more = r.detail.splitlines() or [""]
        lines.append(f"{r.name:<{width}}  {mark:<6}  {r.seconds:5.1f}s  {first}")
        lines += [f"{'':<{width + 18}}{line.strip()}" for line in more]  # under DETAIL
    return "\n".join(lines)


def main(config: str, timeout: float) -> int:
    """Entry point for ``cdp-connector check``; prints the table, returns the exit code."""
    started = time.monotonic()
    try:
        settings = load_config(config)
    except ConfigError as exc:
        result = CheckResult("config", False, str(exc), time.monotonic() - started)
        print(format_table([result]))
        return 2
    checks = [check for build in CHECK_BUILDERS for check in build(settings)]
    results = [
        CheckResult("config", True, f"{Path(config)} is valid", time.monotonic() - started),
        *run_checks(settings, checks, timeout),
    ]
    secrets = known_secrets(settings)
    results = [
        CheckResult(r.name, r.ok, redact(r.detail, secrets), r.seconds, r.refused) for r in results
    ]
    print(format_table(results))
    failed = sum(not r.ok for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    if any(r.refused for r in results):
        return 2  # `run` would not start with this mapping
    return 1 if failed else 0
