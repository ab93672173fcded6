"""structlog's private parts otel_django relies on (``otel_django._compat``, structlog section):
these tests fail when a structlog release changes them."""

from __future__ import annotations

import contextvars

import structlog

from otel_django._compat import structlog_context_variables
from otel_django.logging.processors import merge_contextvars


def test_structlog_keeps_its_context_variables_in_one_dict_by_prefixed_key() -> None:
    variables = structlog_context_variables()
    assert variables is not None, "structlog.contextvars._CONTEXT_VARS is gone"
    tokens = structlog.contextvars.bind_contextvars(compat_probe="bound")
    try:
        name = structlog.contextvars.STRUCTLOG_KEY_PREFIX + "compat_probe"
        var = variables[name]
        assert isinstance(var, contextvars.ContextVar)
        assert var.name == name
        assert var.get() == "bound"
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
    # Unbound, structlog leaves the variable in place holding Ellipsis.
    structlog.contextvars.unbind_contextvars("compat_probe")
    assert variables[name].get() is Ellipsis


def test_the_pipelines_merge_is_not_structlogs_fallback() -> None:
    # Where the dict is missing, merge_contextvars() falls back to structlog's own processor,
    # correct but slower: the fast one must be in use with this structlog.
    assert merge_contextvars() is not structlog.contextvars.merge_contextvars
