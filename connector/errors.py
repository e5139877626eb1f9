"""The connector's exceptions, grouped by what the caller does about them.

    ConnectorError                 base; ``retriable`` says whether trying again can help
    ├── ConfigError                bad config or mapping at start-up → exit code 2
    ├── RecordError                this one record cannot be processed → dead-letter topic
    │   ├── DecodeError            bytes are not a valid Avro record for the schema
    │   └── MappingError           no rule matched (when configured so) or a field failed
    └── TransientError             not about one record (schema registry down) → retry

``RecordError`` carries ``stage`` (decode, map), the name the dead-letter headers use
for where it failed. Answers from the CDP are not exceptions: ``connector.cdp.answer``
classifies each one (delivered, retryable, permanent → dead letter ``stage=deliver``,
fatal → halt), and a failure the process must not go on after (a dead-letter write
that failed, a bug) is ``RunState.fail``: stop, commit nothing past it, exit 1.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every error the connector raises on purpose."""

    retriable: bool = False


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


class TransientError(ConnectorError):
    """A dependency is unavailable for now; the same work may succeed later."""

    retriable = True
