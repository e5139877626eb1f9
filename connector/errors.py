"""The connector's exceptions, grouped by what the caller does about them.

    ConnectorError                 base of every exception raised on purpose
    ├── ConfigError                bad config or mapping at start-up → exit code 2
    │   └── kafka.topics.CredentialsRefused  the broker refused the SASL login
    │                              (start-up topic check, ``check``) → exit 2 / a failed row
    ├── RecordError                this one record cannot be processed → dead-letter topic
    │   ├── DecodeError            bytes are not a valid Avro record for the schema
    │   ├── MappingError           no rule matched (when configured so) or a field failed
    │   │   └── mapping.UnknownPointOfSale  a pos from the record the tenant lacks
    │   └── settle.stage.NotConfigured  a replayed dead letter's topic is not in the config
    ├── TransientError             not about one record (schema registry down); retriable:
    │                              settle waits it out (``run``) or stops (``replay-dlq``)
    ├── source.replay_reader.ReplayError  replay-dlq cannot start (dead-letter topic
    │                              unavailable) → exit 1
    ├── commands.check.CheckFailed one ``check`` did not pass → a failed row, exit 1
    ├── commands.studio_session.Conflict  the studio's save refused: the file changed on
    │                              disk → 409
    └── InternalError              raised and caught inside one module, never leaves it:
        ├── decode.schemas.SchemaError         → ConfigError (a local .avsc) or DecodeError
        ├── decode.avro_codegen.Unsupported    → fastavro reads that schema instead
        ├── decode.avro_codegen.LeftOver       → DecodeError
        ├── cdp.http1_parser.Http1Error        → a network error answer (retried)
        │   └── cdp.proxy.ProxyError           the proxy, not the API, failed it
        │       └── cdp.proxy.ProxyAuthRefused → 407 to CONNECT: halts like a 401
        ├── mapping.paths.PathSyntaxError      → ConfigError naming the line
        ├── mapping.transforms.TransformArgError → ConfigError naming the line
        ├── mapping.expressions.SpecError      → ConfigError naming the line
        ├── mapping.expressions.SpecErrors     → ConfigError naming every line (several
        │                                        SpecErrors of one object, reported together)
        ├── mapping.expressions.FieldFailure   → MappingError naming the field
        ├── mapping.lookups.LookupFileError    → ConfigError naming the lookup file
        ├── mapping.avro_json.JsonRecordError  → DecodeError (``map``/``test`` JSON input)
        └── mapping.compiler._Fail             → one line of the compile ConfigError

``retriable`` is what ``connector.settle.stage`` decides on: a retriable error is waited
out, a ``RecordError`` is dead-lettered, anything else aborts the reader.
``RecordError`` carries ``stage`` (decode, map), the name the dead-letter headers use
for where it failed. Some internal errors also derive from the builtin their callers
catch (``ValueError``, ``ConnectionError``). Answers from the CDP are not exceptions:
``connector.cdp.answer`` classifies each one (delivered, retryable, permanent → dead
letter ``stage=deliver``, fatal → halt), and a failure the process must not go on
after (a dead-letter write that failed, a bug) is ``RunState.fail``: stop, commit
nothing past it, exit 1. Pydantic validators raise ``ValueError`` as pydantic asks;
the config loader turns those into one ``ConfigError``.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConnectorError",
    "DecodeError",
    "InternalError",
    "MappingError",
    "RecordError",
    "TransientError",
]


class ConnectorError(Exception):
    """Base of every error the connector raises on purpose."""

    retriable: bool = False  # may the same work succeed later? (settle retries it)


class ConfigError(ConnectorError):
    """Configuration or mapping rules are invalid; the message names file and field."""


class RecordError(ConnectorError):
    """One record cannot be processed; it goes to the dead-letter topic."""

    stage: str = "unknown"

    def __init__(self, message: str, *, rule: str | None = None) -> None:
        super().__init__(message)
        self.rule = rule


class DecodeError(RecordError):
    """The record's bytes are not valid for its schema (magic byte, schema id, body)."""

    stage = "decode"


class MappingError(RecordError):
    """The mapping rules could not turn the record into a valid event."""

    stage = "map"


class InternalError(ConnectorError):
    """Raised and caught inside one module; callers outside it never see it."""


class TransientError(ConnectorError):
    """A dependency is unavailable for now; the same work may succeed later."""

    retriable = True
