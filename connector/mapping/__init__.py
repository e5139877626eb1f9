"""The ``map`` stage: YAML mapping rules compiled into CDP events.

``compile_mapping(path, dialect)`` reads a mapping file (format: docs/mapping.md)
and checks every rule against the dialect's event models; the returned
:class:`Mapper` turns each decoded record into zero or more validated,
serialized events (``Mapper.map(record, topic) -> MapResult``).
"""

from connector.mapping.compiler import (
    PointsOfSale,
    compile_mapping,
    compile_text,
    declared_dialect,
)
from connector.mapping.mapper import NO_MATCH, MappedEvent, Mapper, MapResult, UnknownPointOfSale
from connector.mapping.protocol import DialectLike

__all__ = [
    "NO_MATCH",
    "DialectLike",
    "MapResult",
    "MappedEvent",
    "Mapper",
    "PointsOfSale",
    "UnknownPointOfSale",
    "compile_mapping",
    "compile_text",
    "declared_dialect",
]
