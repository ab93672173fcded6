"""Request ids: an incoming one is kept only when it is short and made of safe characters.

Anything else (CR/LF, quotes, non-ASCII, more than 128 characters) is replaced by a new id,
so what the header carried is never echoed or logged.
"""

from __future__ import annotations

import os
import re

MAX_LENGTH = 128
_SAFE = re.compile(r"[A-Za-z0-9._-]+")


def new_request_id() -> str:
    """32 hex digits from the OS's random source."""
    return os.urandom(16).hex()


def is_safe_request_id(value: str) -> bool:
    """1 to 128 characters of ``[A-Za-z0-9._-]``."""
    return 0 < len(value) <= MAX_LENGTH and _SAFE.fullmatch(value) is not None


def accept_request_id(incoming: str | None) -> str:
    """The incoming id if it is at most 128 of ``[A-Za-z0-9._-]``, else a new one."""
    if incoming and len(incoming) <= MAX_LENGTH and _SAFE.fullmatch(incoming):
        return incoming
    return new_request_id()
