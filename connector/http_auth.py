"""HTTP Basic credentials as a header value: the one encoding the CDP client, the
schema registry client and ``check`` all send."""

from __future__ import annotations

import base64

__all__ = ["basic_auth_header"]


def basic_auth_header(user: str, password: str) -> str:
    """``Basic base64(user:password)`` (for the CDP: client key and API token)."""
    raw = f"{user}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")
