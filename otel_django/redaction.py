"""Which keys hold secrets, and how their values are replaced in logs and span attributes."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode

REDACTED = "[REDACTED]"

DEFAULT_SENSITIVE_FRAGMENTS: tuple[str, ...] = (
    "password", "passwd", "pwd", "secret", "token", "api_key", "apikey", "api-key",
    "authorization", "auth", "cookie", "session", "csrf", "credential", "jwt",
    "credit_card", "creditcard", "card_number", "cvv", "ssn", "private_key",
)


class Redactor:
    """Decides whether a key is sensitive (by substring, case-insensitive) and redacts values."""

    def __init__(self, extra_fragments: Iterable[str] = ()) -> None:
        fragments = {f.lower().replace("-", "_") for f in (*DEFAULT_SENSITIVE_FRAGMENTS, *extra_fragments)}
        self._pattern = re.compile("|".join(re.escape(f) for f in sorted(fragments)))
        self._cache: dict[str, bool] = {}

    def is_sensitive(self, key: str) -> bool:
        known = self._cache.get(key)
        if known is None:
            known = self._pattern.search(key.lower().replace("-", "_")) is not None
            if len(self._cache) < 4096:
                self._cache[key] = known
        return known

    def query_string(self, query: str) -> str:
        """The query string with the values of sensitive keys replaced."""
        if not query:
            return query
        pairs = parse_qsl(query, keep_blank_values=True)
        if not any(self.is_sensitive(k) for k, _ in pairs):
            return query
        return urlencode([(k, REDACTED if self.is_sensitive(k) else v) for k, v in pairs])

    def mapping(self, data: dict[str, object]) -> dict[str, object]:
        """A copy of ``data`` with the values of sensitive keys replaced, recursively."""
        out: dict[str, object] = {}
        for key, value in data.items():
            if self.is_sensitive(key):
                out[key] = REDACTED
            elif isinstance(value, dict):
                out[key] = self.mapping(value)
            else:
                out[key] = value
        return out
