"""Which address a request came from, trusting X-Forwarded-For only when told to."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping


def client_address(meta: Mapping[str, object], trust_x_forwarded_for: bool) -> str | None:
    """REMOTE_ADDR or, when trusted, the X-Forwarded-For entry the nearest proxy added.

    The last entry is the one our proxy wrote; earlier ones come from the client and can say
    anything. A value that is not an IP address is never returned.
    """
    candidate: object = meta.get("REMOTE_ADDR")
    if trust_x_forwarded_for:
        forwarded = meta.get("HTTP_X_FORWARDED_FOR")
        if isinstance(forwarded, str) and forwarded.strip():
            candidate = forwarded.rsplit(",", 1)[-1]
    if not isinstance(candidate, str) or len(candidate) > _MAX_ADDRESS_TEXT:
        return None
    return _normalized_address(candidate)


_MAX_ADDRESS_TEXT = 64  # the longest IPv6 text with a zone id is shorter


# Parsing with ipaddress costs ≈ 2 µs; the same peers (proxies, clients) come back.
@functools.lru_cache(maxsize=1024)
def _normalized_address(candidate: str) -> str | None:
    try:
        return str(ipaddress.ip_address(candidate.strip()))
    except ValueError:
        return None
