"""Apply compiled rules to decoded records: the ``map`` stage at runtime.

Pure logic, no I/O. The first rule whose topic filter and condition match a
record decides what it becomes: nothing (a skip rule), or its events in the
order they are listed, each validated and serialized by the dialect so the
body is exactly what is POSTed. Anything wrong with the record's data is a
MappingError naming the rule and the field; no other exception escapes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from connector.errors import MappingError
from connector.mapping.fields import (
    BROWSER_ID_PLACEHOLDER,
    RUNTIME_ERRORS,
    Evaluator,
    FieldFailure,
)
from connector.mapping.fit import explain, is_member
from connector.mapping.paths import Getter, is_falsy
from connector.mapping.problems import suggest
from connector.mapping.protocol import DialectLike
from connector.mapping.uses import PathUse

__all__ = [
    "NO_MATCH",
    "CompiledEvent",
    "CompiledRule",
    "MapResult",
    "MappedEvent",
    "Mapper",
    "UnknownPointOfSale",
]

NO_MATCH = "no-match"


class UnknownPointOfSale(MappingError):
    """An event's ``pos``, read from the record, is not one of the tenant's points of sale.

    The CDP would answer it with success and drop it; the record is dead-lettered
    instead, and ``value`` lets the caller count it and log each value once.
    """

    def __init__(self, message: str, *, rule: str | None, value: str) -> None:
        super().__init__(message, rule=rule)
        self.value = value


@dataclass(frozen=True)
class MappedEvent:
    """One CDP event produced from a record, ready to POST."""

    rule: str
    event_type: str
    guest_key: str
    body: bytes


@dataclass(frozen=True)
class MapResult:
    """What a record became: events, or the reason it produces none.

    ``skipped_by`` is the name of the skip rule that matched, ``"no-match"``
    when no rule matched (and ``on_no_match`` is ``skip``), or None when there
    are events.
    """

    events: tuple[MappedEvent, ...]
    skipped_by: str | None


@dataclass(frozen=True)
class CompiledEvent:
    """One ``emit`` entry: its type (fixed, or computed for custom events) and builder."""

    label: str  # e.g. "ORDER_CHECKOUT", or "custom event" for computed names
    event_type: str | None
    type_of: Evaluator | None
    when: Getter | None
    build: Evaluator
    # The dialect's validate + dump for this event's model, bound at compile time.
    encode: Callable[[Mapping[str, Any]], bytes]


@dataclass(frozen=True)
class CompiledRule:
    """A rule: where it applies and what it emits (no events = a skip rule)."""

    name: str
    topics: frozenset[str] | None
    topic_pattern: re.Pattern[str] | None
    when: Getter | None
    when_text: str
    skip: bool
    events: tuple[CompiledEvent, ...]
    guest_key: Evaluator | None
    line: int = 0  # where the rule (its topics / topic_pattern, if any) is written

    def applies_to(self, topic: str) -> bool:
        """Whether the rule reads records of ``topic`` (its ``topics`` and ``topic_pattern``)."""
        if self.topics is not None and topic not in self.topics:
            return False
        return self.topic_pattern is None or self.topic_pattern.fullmatch(topic) is not None


class Mapper:
    """Maps decoded records to CDP events with the rules of one mapping file.

    Built by :func:`connector.mapping.compile_mapping`; thread-safe after that
    (the per-topic rule cache only ever gains entries).
    """

    def __init__(
        self,
        *,
        source: str,
        dialect: DialectLike,
        rules: tuple[CompiledRule, ...],
        on_no_match: Literal["skip", "dead_letter"],
        guest_key: Evaluator | None,
        reserved: frozenset[str],
        uses_browser_ids: bool = False,
        path_uses: tuple[PathUse, ...] = (),
        points_of_sale: frozenset[str] | None = None,
        points_of_sale_from: str = "",
    ) -> None:
        self.source = source
        self.dialect = dialect
        self.rules = rules
        self.on_no_match = on_no_match
        self._guest_key = guest_key
        self._reserved = reserved
        #: Some rule asks for ``browser_id_for``: the sender must resolve placeholders.
        self.uses_browser_ids = uses_browser_ids
        self._by_topic: dict[str, tuple[CompiledRule, ...]] = {}
        #: Every expression that reads the record, for checks against a writer schema.
        self.path_uses = path_uses
        #: The tenant's points of sale (None: not known, ``pos`` is not checked).
        self.points_of_sale = points_of_sale
        self._pos_from = points_of_sale_from or "the points of sale"

    @property
    def rule_names(self) -> tuple[str, ...]:
        """The rules' names, in the order they are tried."""
        return tuple(rule.name for rule in self.rules)

    def map(self, record: Mapping[str, Any], topic: str) -> MapResult:
        """Map one decoded record read from ``topic``.

        Called by the pipeline on the consumer side for every record; a
        MappingError sends the record to the dead-letter topic.
        """
        rules = self._by_topic.get(topic)
        if rules is None:
            rules = self._by_topic[topic] = tuple(r for r in self.rules if r.applies_to(topic))
        for rule in rules:
            if rule.when is not None:
                try:
                    matched = rule.when(record)
                except RUNTIME_ERRORS as exc:
                    raise MappingError(
                        f"rule {rule.name!r}: condition {rule.when_text!r} failed: {exc}",
                        rule=rule.name,
                    ) from exc
                if matched is not True and is_falsy(matched):
                    continue
            if rule.skip:
                return MapResult((), rule.name)
            return self._emit(rule, record)
        if self.on_no_match == "skip":
            return MapResult((), NO_MATCH)
        tried = ", ".join(repr(r.name) for r in rules) or "none applies to this topic"
        raise MappingError(
            f"no rule matched (topic {topic!r}; rules tried: {tried}) "
            "and on_no_match is dead_letter"
        )

    def _emit(self, rule: CompiledRule, record: Mapping[str, Any]) -> MapResult:
        guest_rule = rule.guest_key or self._guest_key
        fixed_key = None if guest_rule is None else self._guest(rule, guest_rule, record)
        events: list[MappedEvent] = []
        for event in rule.events:
            if event.when is not None and is_falsy(self._condition(rule, event, record)):
                continue
            try:
                payload = event.build(record, record)
                event_type = event.event_type or self._custom_type(event, record)
            except FieldFailure as failure:
                raise MappingError(
                    f"rule {rule.name!r}, {event.label}: field {failure.field!r}: "
                    f"{failure.message}",
                    rule=rule.name,
                ) from failure
            payload["type"] = event_type
            if self.points_of_sale is not None:
                self._check_pos(rule, event_type, payload.get("pos"))
            body = self._serialize(rule, event, event_type, payload)
            guest = fixed_key if fixed_key is not None else payload.get("browser_id")
            if type(guest) is str and guest.startswith(BROWSER_ID_PLACEHOLDER):
                guest = guest[len(BROWSER_ID_PLACEHOLDER) :]  # the visitor id orders its events
            if guest is None:
                raise MappingError(
                    f"rule {rule.name!r}, {event_type}: no guest key (browser_id is missing)",
                    rule=rule.name,
                )
            events.append(MappedEvent(rule.name, event_type, str(guest), body))
        if not events:
            return MapResult((), rule.name)
        return MapResult(tuple(events), None)

    def _check_pos(self, rule: CompiledRule, event_type: str, pos: Any) -> None:
        assert self.points_of_sale is not None  # noqa: S101 - only called when there are some
        if not isinstance(pos, str) or pos in self.points_of_sale:
            return  # a missing pos, or one that is not text, is the model's to report
        known = sorted(self.points_of_sale)
        raise UnknownPointOfSale(
            f"rule {rule.name!r}, {event_type}: field 'pos': {pos!r} is not in {self._pos_from} "
            f"({', '.join(known)}){suggest(str(pos), known)}; the CDP would accept the event "
            "and drop it",
            rule=rule.name,
            value=str(pos),
        )

    def _guest(self, rule: CompiledRule, guest_key: Evaluator, record: Mapping[str, Any]) -> str:
        try:
            value = guest_key(record, record)
        except RUNTIME_ERRORS as exc:
            raise MappingError(f"rule {rule.name!r}: guest_key: {exc}", rule=rule.name) from exc
        if value is None or value == "":
            raise MappingError(
                f"rule {rule.name!r}: guest_key is missing or empty in the record",
                rule=rule.name,
            )
        return value if isinstance(value, str) else str(value)

    @staticmethod
    def _condition(rule: CompiledRule, event: CompiledEvent, record: Mapping[str, Any]) -> Any:
        assert event.when is not None  # noqa: S101 - only called when there is one
        try:
            return event.when(record)
        except RUNTIME_ERRORS as exc:
            raise MappingError(
                f"rule {rule.name!r}, {event.label}: when failed: {exc}", rule=rule.name
            ) from exc

    def _custom_type(self, event: CompiledEvent, record: Mapping[str, Any]) -> str:
        assert event.type_of is not None  # noqa: S101 - set whenever event_type is None
        try:
            name = event.type_of(record, record)
        except RUNTIME_ERRORS as exc:
            raise FieldFailure(["type"], f"custom event name: {exc}") from exc
        if not isinstance(name, str) or not name:
            raise FieldFailure(
                ["type"], f"custom event name must be a non-empty string, not {name!r}"
            )
        if name in self._reserved:
            raise FieldFailure(["type"], f"custom event name {name!r} is a reserved event type")
        return name

    def _serialize(
        self, rule: CompiledRule, event: CompiledEvent, event_type: str, payload: dict[str, Any]
    ) -> bytes:
        try:
            return event.encode(payload)
        except ValidationError as exc:
            model = self.dialect.model_for(event_type)
            places: dict[tuple[int | str, ...], list[ErrorDetails]] = {}
            for error in exc.errors():
                places.setdefault(_place(error["loc"]), []).append(error)
            problems = "; ".join(
                f"field {_loc(place)!r}: {_in_words(errors, model)}"
                for place, errors in places.items()
            )
            raise MappingError(
                f"rule {rule.name!r}, {event_type}: the payload fails the "
                f"{self.dialect.name} model: {problems}",
                rule=rule.name,
            ) from exc
        except (ValueError, TypeError) as exc:  # pydantic's serialization errors are ValueErrors
            raise MappingError(
                f"rule {rule.name!r}, {event_type}: cannot serialize the payload: {exc}",
                rule=rule.name,
            ) from exc


def _in_words(errors: list[ErrorDetails], model: Any) -> str:
    """What the model said about one place, in words (pydantic's own text if that fails:
    nothing may escape the mapper)."""
    try:
        return explain(errors, model)
    except Exception:  # noqa: BLE001 - a message, never a crash of the consumer thread
        return str(errors[0]["msg"])


def _place(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """``loc`` without pydantic's union-member names (``ext.a.int`` → ``ext.a``)."""
    return tuple(part for part in loc if not is_member(part) and part != "[key]")


def _loc(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(payload)"
