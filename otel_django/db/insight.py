"""Per-request query insight: the request scope that slow-query and N+1 detection use."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

from opentelemetry.trace import Span


@dataclass
class RequestScope:
    span: Span
    shapes: dict[str, int] = field(default_factory=dict)


_scope: contextvars.ContextVar[RequestScope | None] = contextvars.ContextVar(
    "otel_django_request_scope", default=None
)


def begin_request(span: Span) -> contextvars.Token[RequestScope | None]:
    return _scope.set(RequestScope(span))


def end_request(token: contextvars.Token[RequestScope | None]) -> None:
    _scope.reset(token)


def current_scope() -> RequestScope | None:
    return _scope.get()
