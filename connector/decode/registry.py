"""A small client of the Confluent Schema Registry REST API: writer schemas by id, cached.

Only ``GET /schemas/ids/{id}`` is used, which Confluent, Apicurio (``/apis/ccompat/v7``),
Karapace and Redpanda all serve. Schema ids are immutable, so a schema fetched once is kept
for the life of the process. Blocking HTTP is deliberate: decoding runs on the Kafka consumer
thread, and after the first record of each schema no request is made at all.

What a failure means for the record that needed the schema:

- 404 (the id is unknown to this registry) → ``DecodeError``: the record is at fault
  (written against another registry, or garbage); remembered for ``negative_ttl`` seconds so
  a stream of such records does not hammer the registry.
- the schema is not Avro, or not valid Avro → ``DecodeError``.
- registry unreachable, timeout, 5xx, other HTTP errors, an answer that is not the expected
  JSON → ``TransientError``: not the record's fault, so it must not be dead-lettered.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from connector.config import RegistrySettings
from connector.decode.schemas import ParsedSchema, SchemaError, parse_schema_text
from connector.errors import DecodeError, TransientError
from connector.http_auth import basic_auth_header

__all__ = ["RegistryClient", "registry_client"]


class RegistryClient:
    """Fetches writer schemas by id from a Confluent-compatible schema registry."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        basic_auth: tuple[str, str] | None = None,
        negative_ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"schema registry URL must be http(s): {url!r}")
        self.url = url.rstrip("/")
        self._timeout = timeout
        self._headers = {"Accept": "application/vnd.schemaregistry.v1+json, application/json"}
        if basic_auth is not None:
            self._headers["Authorization"] = basic_auth_header(*basic_auth)
        self._negative_ttl = negative_ttl
        self._clock = clock
        self._schemas: dict[int, ParsedSchema] = {}
        self._missing: dict[int, tuple[float, str]] = {}  # id → (retry after, reason)
        self._lock = threading.Lock()  # one fetch per id even if several threads decode

    def __repr__(self) -> str:
        return f"RegistryClient({self.url!r})"  # never the credentials

    def schema(self, schema_id: int) -> ParsedSchema:
        """The parsed writer schema registered under ``schema_id``."""
        cached = self._schemas.get(schema_id)
        if cached is not None:
            return cached
        with self._lock:
            cached = self._schemas.get(schema_id)
            if cached is None:
                cached = self._fetch(schema_id)
                self._schemas[schema_id] = cached
            return cached

    def latest(self, subject: str) -> tuple[int, ParsedSchema] | None:
        """The id and schema of ``subject``'s latest version; None when the subject is unknown.

        Used at start-up to check mapping paths, not per record: nothing is cached.
        Raises TransientError when the registry cannot answer, DecodeError for a
        schema that is not valid Avro.
        """
        quoted = urllib.parse.quote(subject, safe="")
        answer = self._subject_json(f"/subjects/{quoted}/versions/latest", subject)
        if answer is None:
            return None  # 404: no such subject
        if not isinstance(answer, dict) or not isinstance(answer.get("schema"), str):
            raise TransientError(f"schema registry {self.url}: subject {subject!r}: no schema")
        if (answer.get("schemaType") or "AVRO") != "AVRO":
            raise DecodeError(f"subject {subject!r} is a {answer['schemaType']} schema, not Avro")
        try:
            return int(answer.get("id", 0)), parse_schema_text(answer["schema"])
        except SchemaError as exc:
            raise DecodeError(f"subject {subject!r}: {exc}") from exc

    def other_versions(
        self, subject: str, latest_id: int | None = None, most: int = 20
    ) -> list[tuple[int, int, ParsedSchema]]:
        """``(version, id, schema)`` of ``subject``'s versions whose schema id is not
        ``latest_id``, newest first.

        At most ``most`` of them; used at start-up, when a mapping's condition reads a
        field the latest version lacks, to tell a field of another version from a typo.
        Raises what ``latest`` raises."""
        quoted = urllib.parse.quote(subject, safe="")
        numbers = self._subject_json(f"/subjects/{quoted}/versions", subject)
        if not isinstance(numbers, list):
            return []
        wanted = sorted((n for n in numbers if isinstance(n, int)), reverse=True)
        found = []
        for number in wanted[:most]:
            answer = self._subject_json(f"/subjects/{quoted}/versions/{number}", subject)
            if not isinstance(answer, dict) or not isinstance(answer.get("schema"), str):
                continue
            if (answer.get("schemaType") or "AVRO") != "AVRO" or answer.get("id") == latest_id:
                continue
            try:
                schema = parse_schema_text(answer["schema"])
            except SchemaError:
                continue  # not one we could decode with either
            found.append((number, int(answer.get("id", 0)), schema))
        return found

    def _subject_json(self, path: str, subject: str) -> Any:
        """The JSON answer at ``path`` about ``subject``; None for 404, TransientError for
        anything else that is not an answer."""
        request = urllib.request.Request(self.url + path, headers=self._headers)  # noqa: S310 - scheme checked in __init__
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                if exc.code == 404:
                    return None
                raise TransientError(
                    f"schema registry {self.url} answered HTTP {exc.code} for subject {subject!r}"
                ) from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise TransientError(f"schema registry {self.url}: subject {subject!r}: {exc}") from exc

    def _fetch(self, schema_id: int) -> ParsedSchema:
        missing = self._missing.get(schema_id)
        if missing is not None and self._clock() < missing[0]:
            raise DecodeError(missing[1])
        answer = self._get_json(f"/schemas/ids/{schema_id}", schema_id)
        if not isinstance(answer, dict) or not isinstance(answer.get("schema"), str):
            raise TransientError(
                f"schema registry {self.url} answered schema id {schema_id} without a schema"
            )
        schema_type = answer.get("schemaType") or "AVRO"
        if schema_type != "AVRO":
            raise DecodeError(f"schema id {schema_id} is a {schema_type} schema, not Avro")
        if answer.get("references"):
            raise DecodeError(
                f"schema id {schema_id} uses schema references, which this connector does not "
                "resolve; register the schema self-contained"
            )
        try:
            return parse_schema_text(answer["schema"])
        except SchemaError as exc:
            raise DecodeError(f"schema id {schema_id}: {exc}") from exc

    def _get_json(self, path: str, schema_id: int) -> Any:
        request = urllib.request.Request(self.url + path, headers=self._headers)  # noqa: S310 - scheme checked in __init__
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                body = response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                detail = exc.read(500).decode("utf-8", "replace")
            if exc.code == 404:
                reason = f"schema id {schema_id} is unknown to the schema registry ({detail})"
                self._missing[schema_id] = (self._clock() + self._negative_ttl, reason)
                raise DecodeError(reason) from exc
            raise TransientError(
                f"schema registry {self.url} answered HTTP {exc.code} for schema id "
                f"{schema_id}: {detail}"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise TransientError(f"schema registry {self.url} unreachable: {cause}") from exc
        try:
            return json.loads(body)
        except ValueError as exc:
            raise TransientError(
                f"schema registry {self.url} answered schema id {schema_id} with invalid JSON"
            ) from exc


def registry_client(settings: RegistrySettings | None) -> RegistryClient | None:
    """The client for ``schema_registry`` (None when the config has none): built once by
    the wiring place and shared by the decoders and the record-path checks."""
    if settings is None:
        return None
    return RegistryClient(
        settings.url, timeout=settings.timeout_seconds, basic_auth=settings.basic_auth()
    )
