"""connector/errors.py draws the tree of the connector's exceptions; it names every one."""

from __future__ import annotations

import importlib
import pkgutil

import connector
from connector import errors


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_every_connector_error_is_in_the_drawn_tree() -> None:
    for module in pkgutil.walk_packages(connector.__path__, "connector."):
        if not module.name.endswith("__main__"):  # those run a command line
            importlib.import_module(module.name)
    ours = {c for c in _subclasses(errors.ConnectorError) if c.__module__.startswith("connector.")}
    assert len(ours) > 20  # the walk imported the modules that define them
    tree = errors.__doc__ or ""
    missing = sorted(f"{c.__module__}.{c.__name__}" for c in ours if c.__name__ not in tree)
    assert not missing, f"not in connector/errors.py's tree: {missing}"
