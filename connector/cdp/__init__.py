"""The Sitecore CDP side: payload models (dialects), the HTTP client and the sandbox.

Models, transport and answer classification are separate modules so that a new
dialect is an addition: ``dialect.py`` (the two dialects), ``models.py`` (the
AsyncAPI spec), ``sitecore_models.py`` (Sitecore's data model), ``transport.py`` (paths,
transports), ``http1.py`` (the HTTP client), ``client.py`` (``CdpClient``), ``sandbox/``.
"""

from __future__ import annotations

from connector.cdp.dialect import Dialect, get_dialect

__all__ = ["Dialect", "get_dialect"]
