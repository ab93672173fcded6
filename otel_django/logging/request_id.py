"""Request ids: an incoming one is kept only when it is short and made of safe characters."""

from __future__ import annotations

import os
import re

_SAFE = re.compile(r"[A-Za-z0-9._-]{1,128}")


def new_request_id() -> str:
    return os.urandom(16).hex()


def accept_request_id(incoming: str | None) -> str:
    """The incoming id if it is at most 128 of ``[A-Za-z0-9._-]``, else a new one."""
    if incoming and _SAFE.fullmatch(incoming):
        return incoming
    return new_request_id()
