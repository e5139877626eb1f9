"""Read a mapping file into a tree of nodes that remember their line numbers.

PyYAML's ``compose`` keeps a mark on every node; the plain ``safe_load`` result
loses them. Compile errors must point at the line that caused them, so the
compiler works on :class:`YNode` trees instead of plain dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from connector.errors import ConfigError

__all__ = ["YNode", "load_yaml", "parse_yaml"]


@dataclass(eq=False)
class YNode:
    """One YAML value: a scalar (``value`` is the Python value), a mapping or a sequence."""

    value: Any
    line: int
    kind: str  # "scalar" | "map" | "seq"
    key_lines: dict[str, int] = field(default_factory=dict)

    @property
    def is_map(self) -> bool:
        """A mapping node (``value`` is a dict of YNode)."""
        return self.kind == "map"

    @property
    def is_seq(self) -> bool:
        """A sequence node (``value`` is a list of YNode)."""
        return self.kind == "seq"

    @property
    def is_scalar(self) -> bool:
        """A scalar node (``value`` is the plain Python value)."""
        return self.kind == "scalar"

    def get(self, key: str) -> YNode | None:
        """The child under ``key`` of a mapping node (None when absent)."""
        if self.kind != "map":
            return None
        child: YNode | None = self.value.get(key)
        return child

    def items(self) -> list[tuple[str, YNode]]:
        """A mapping node's (key, child) pairs in file order; empty for any other node."""
        return list(self.value.items()) if self.kind == "map" else []

    def line_of(self, path: tuple[str | int, ...]) -> int:
        """The line of the value at ``path`` (keys and list indices), or of its nearest
        parent that exists: a missing key is reported where its mapping is."""
        node, line = self, self.line
        for part in path:
            if node.kind == "map" and isinstance(part, str) and part in node.value:
                node, line = node.value[part], node.key_lines[part]
            elif node.kind == "seq" and isinstance(part, int) and 0 <= part < len(node.value):
                node = node.value[part]
                line = node.line
            else:
                break
        return line

    def to_python(self) -> Any:
        """The plain Python value (dicts, lists, scalars), line numbers dropped."""
        if self.kind == "map":
            return {k: v.to_python() for k, v in self.value.items()}
        if self.kind == "seq":
            return [v.to_python() for v in self.value]
        return self.value


def load_yaml(path: Path) -> YNode:
    """Parse ``path``; a syntax error or duplicate key is a ConfigError naming file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read mapping file: {exc.strerror or exc}") from exc
    return parse_yaml(text, str(path))


def parse_yaml(text: str, filename: str) -> YNode:
    """Parse YAML text (``filename`` is only used in messages)."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise ConfigError(f"{filename}: the mapping file is empty")
        return _convert(root, loader, filename, {})
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{filename}{line}: invalid YAML: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{filename}: invalid YAML: {exc}") from exc
    finally:
        loader.dispose()


def _convert(
    node: yaml.Node, loader: yaml.SafeLoader, filename: str, memo: dict[int, YNode]
) -> YNode:
    # Aliases point at the same composed node; convert it once (flattening is not idempotent).
    done = memo.get(id(node))
    if done is None:
        done = memo[id(node)] = _convert_new(node, loader, filename, memo)
    return done


def _convert_new(
    node: yaml.Node, loader: yaml.SafeLoader, filename: str, memo: dict[int, YNode]
) -> YNode:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        # Resolves YAML merge keys (<<: *anchor) in place, so anchors can share field blocks.
        own = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
        loader.flatten_mapping(node)
        merged = len(node.value) - own  # merged entries come first; own keys override them
        children: dict[str, YNode] = {}
        key_lines: dict[str, int] = {}
        own_keys: set[str] = set()
        for index, (key_node, value_node) in enumerate(node.value):
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            key_line = key_node.start_mark.line + 1
            if index >= merged and key in own_keys:
                raise ConfigError(
                    f"{filename}:{key_line}: duplicate key {key!r} (first at line {key_lines[key]})"
                )
            if index >= merged:
                own_keys.add(key)
            children[key] = _convert(value_node, loader, filename, memo)
            key_lines[key] = key_line
        return YNode(children, line, "map", key_lines)
    if isinstance(node, yaml.SequenceNode):
        return YNode([_convert(item, loader, filename, memo) for item in node.value], line, "seq")
    return YNode(loader.construct_object(node, deep=True), line, "scalar")
