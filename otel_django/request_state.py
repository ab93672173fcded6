"""What the middleware keeps on a request while it handles it, for whoever sees the request.

The middleware attaches a :class:`RequestState` to each request it traces; logging reads it
for the records Django writes after the middleware chain has returned (a 4xx's
``django.request`` line), when the request's context is gone.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

__all__ = ["RequestState", "attach", "request_state"]

_ATTRIBUTE = "_otel_django"


class RequestState:
    __slots__ = (
        "active_attributes",
        "error_type",
        "method",
        "request_id",
        "span",
        "start",
        "tokens",
        "untraced",
    )

    def __init__(
        self,
        span: trace.Span,
        method: str,
        request_id: str,
        start: int,
        active_attributes: dict[str, str],
        tokens: tuple[Any, ...],
    ) -> None:
        self.span = span
        self.method = method
        self.request_id = request_id
        self.start = start
        self.active_attributes = active_attributes
        self.tokens = tokens
        self.untraced = False
        # The ``error.type`` of an exception the view raised (``process_exception``).
        self.error_type: str | None = None


def attach(request: object, state: RequestState) -> None:
    setattr(request, _ATTRIBUTE, state)


def request_state(request: object) -> RequestState | None:
    """The state the middleware attached to ``request``, if any."""
    state = getattr(request, _ATTRIBUTE, None)
    return state if isinstance(state, RequestState) else None
