"""The Sitecore CDP side: payload models (dialects), the HTTP client and the sandbox.

Models, transport and answer classification are separate modules so that a new
dialect is an addition: ``dialect.py`` (registry), ``models.py`` + ``asyncapi.py``
(the AsyncAPI spec), ``client.py`` (HTTP and ``classify``), ``sandbox.py``.
"""

from __future__ import annotations

from connector.cdp.dialect import Dialect, get_dialect, register_dialect

__all__ = ["Dialect", "get_dialect", "register_dialect"]

# The default dialect registers itself on import.
from connector.cdp import asyncapi as _asyncapi

del _asyncapi
