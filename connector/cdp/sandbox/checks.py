"""What makes a sandbox event request acceptable: its body, its credentials, its payload.

``Sandbox.create_event`` asks these in the order the real service answers: faults
first (``faults``), then ``Credentials.check``, then the body ``read_event``
found, then ``validate``. Each answers a ``Refusal`` (the error answer to give) or
None; none raises. The body is read before anything else is looked at, so every
request, faulted or refused, is attributed to its guest (``requests``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from connector.cdp.dialect import Dialect
from connector.cdp.sandbox.spec import SpecValidator
from connector.cdp.transport import EVENTS_PATH

__all__ = ["Credentials", "Refusal", "read_event", "validate"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """An error answer: status, message, and the offending field, headers, errors."""

    status: int
    message: str
    field: str | None = None
    headers: Mapping[str, str] | None = None
    errors: list[dict[str, str]] | None = None


async def read_event(request: web.Request) -> dict[str, Any] | Refusal:
    """The event object of a request on any transport, or why there is none."""
    if request.method == "GET":  # get-query: the event is the message parameter
        body = request.query.get("message", "").encode()
    else:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return Refusal(413, "body too large", field="body")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        return Refusal(400, f"body is not valid JSON: {str(exc)[:200]}", field="body")
    if not isinstance(payload, dict):
        return Refusal(400, "body must be a JSON object (one event)", field="body")
    return payload


class Credentials:
    """The sandbox's client key and API token, as each transport presents them."""

    def __init__(self, client_key: str, api_token: str) -> None:
        self._key = client_key
        self._expected = f"{client_key}:{api_token}".encode()
        self._expected_header = "Basic " + base64.b64encode(self._expected).decode()

    def key_refused(self, given: str) -> Refusal | None:
        """The 401 for a ``client_key`` that is not the sandbox's."""
        if hmac.compare_digest(given, self._key):
            return None
        return Refusal(401, "unknown client_key", field="client_key")

    def check(self, request: web.Request, parsed: dict[str, Any] | Refusal) -> Refusal | None:
        """The 401 for a request without the right credentials; None if allowed. A
        post-events body loses its ``client_key`` here (it is not part of the event)."""
        if request.method == "GET":
            return self.key_refused(request.query.get("client_key", ""))
        if request.path != EVENTS_PATH:
            if not self._authorized(request.headers.get("Authorization")):
                return Refusal(
                    401, "unauthorized", headers={"WWW-Authenticate": 'Basic realm="cdp"'}
                )
        elif isinstance(parsed, dict):  # post-events: the key is in the body
            key = parsed.pop("client_key", None)
            if not isinstance(key, str):
                return Refusal(401, "unknown client_key", field="client_key")
            return self.key_refused(key)
        return None

    def _authorized(self, header: str | None) -> bool:
        if header is None:
            return False
        if header == self._expected_header:
            return True
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            raw = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(raw, self._expected)


def validate(
    payload: dict[str, Any], dialect: Dialect | None, spec: SpecValidator | None
) -> Refusal | None:
    """The 400 naming the first offending field, checked against the AsyncAPI
    document's schemas (``spec``) or else the dialect's payload models."""
    if spec is not None:
        errors = spec.errors(payload)
        return _refuse(errors) if errors else None
    if dialect is not None:
        try:
            dialect.validate(payload)
        except ValidationError as exc:
            return _invalid(exc)
        except RecursionError:
            return Refusal(400, "body nests too deeply", field="body")
    return None


def _invalid(exc: ValidationError) -> Refusal:
    by_field: dict[str, list[str]] = {}
    for err in exc.errors(include_url=False, include_input=False):
        by_field.setdefault(_field_name(err["loc"]), []).append(err["msg"])
    # One entry per field: an ext value refused by every union member reads as one error.
    errors = [{"field": f, "message": " or ".join(msgs)} for f, msgs in by_field.items()]
    return _refuse(errors)


def _refuse(errors: list[dict[str, str]]) -> Refusal:
    """400 naming the first offending field, with every error listed."""
    first = errors[0] if errors else {"field": "body", "message": "invalid"}
    return Refusal(
        400, f"{first['field']}: {first['message']}", field=first["field"], errors=errors
    )


def _field_name(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if p != "[key]"]
    if len(parts) > 2 and parts[0] == "ext":
        parts = parts[:2]  # drop the union member tried ("bool", "int", ...)
    return ".".join(parts) or "body"
