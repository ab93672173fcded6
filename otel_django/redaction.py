"""Which keys hold secrets, and how their values are replaced in logs and span attributes.

A key is sensitive when, lowercased with ``-``, ``.`` and spaces read as ``_``, it contains
one of the patterns below (``user_password``, ``X-CSRFToken``, ``apiKey``...) or one of the
fragments given in the ``REDACT_KEYS`` setting. Short words only count as whole words (``ssn``
but not ``classname``); ``auth`` does not match ``author``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote_plus

REDACTED = "[REDACTED]"

DEFAULT_SENSITIVE_PATTERNS: tuple[str, ...] = (
    "password",
    "passwd",
    "passphrase",
    r"(?:^|_)pwd(?:_|$)",
    "secret",
    "token",
    r"api_?key",
    r"auth(?!ors?(?:_|$))",
    "credential",
    "cookie",
    "session",
    "csrf",
    "xsrf",
    r"(?:^|_)jwt(?:_|$)",
    r"private_?key",
    r"credit_?card",
    r"card_?number",
    r"(?:^|_)cvv(?:_|$)",
    r"(?:^|_)cvc(?:_|$)",
    r"(?:^|_)ssn(?:_|$)",
    "social_security",
)
# Never recorded at all, whatever the settings: they carry credentials in every request.
NEVER_RECORDED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
_NORMALISE = str.maketrans({"-": "_", ".": "_", " ": "_"})
_CACHE_LIMIT = 4096


class Redactor:
    """Decides whether a key is sensitive and replaces the values of sensitive keys."""

    def __init__(self, extra_fragments: Iterable[str] = ()) -> None:
        extra = sorted({f.lower().translate(_NORMALISE) for f in extra_fragments if f})
        patterns = [*DEFAULT_SENSITIVE_PATTERNS, *(re.escape(f) for f in extra)]
        self._pattern = re.compile("|".join(f"(?:{p})" for p in patterns))
        self.cache: dict[str, bool] = {}

    def is_sensitive(self, key: str) -> bool:
        known = self.cache.get(key)
        if known is None:
            known = self._pattern.search(key.lower().translate(_NORMALISE)) is not None
            if len(self.cache) < _CACHE_LIMIT:
                self.cache[key] = known
        return known

    def query_string(self, query: str) -> str:
        """The query string with the values of sensitive keys replaced; the rest kept as sent."""
        if not query:
            return query
        parts = query.split("&")
        changed = False
        for index, part in enumerate(parts):
            key, sep, _ = part.partition("=")
            if sep and self.is_sensitive(unquote_plus(key) if "%" in key or "+" in key else key):
                parts[index] = f"{key}={REDACTED}"
                changed = True
        return "&".join(parts) if changed else query

    def mapping(self, data: Mapping[str, object], _depth: int = 0) -> dict[str, object]:
        """A copy of ``data`` with the values of sensitive keys replaced, recursively."""
        out: dict[str, object] = {}
        for key, value in data.items():
            if isinstance(key, str) and self.is_sensitive(key):
                out[key] = REDACTED
            elif isinstance(value, Mapping) and _depth < 8:
                out[key] = self.mapping(value, _depth + 1)
            else:
                out[key] = value
        return out

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Headers safe to record: credentials dropped, sensitive values replaced."""
        return {
            name: REDACTED if self.is_sensitive(name) else value
            for name, value in headers.items()
            if name.lower() not in NEVER_RECORDED_HEADERS
        }
