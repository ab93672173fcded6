"""Private parts of other libraries that otel_django relies on, each in one place, with the
versions it was checked against and a test that fails when it breaks (``tests/test_compat_*``).
"""

from __future__ import annotations

import contextvars
from typing import Any

# -- structlog ----------------------------------------------------------------------------
# structlog.contextvars keeps one ContextVar per key ever bound, named "structlog_<key>"
# (its public STRUCTLOG_KEY_PREFIX), in the private module dict ``_CONTEXT_VARS``. Reading it
# lets the pipeline's merge_contextvars skip copying the whole context
# (otel_django.logging.processors). Checked against structlog 26.1 (pyproject's floor: 24.1);
# tests/test_compat_structlog.py fails when it breaks.


def structlog_context_variables() -> dict[str, contextvars.ContextVar[Any]] | None:
    """structlog's own dict of its context variables, or None where it keeps them elsewhere."""
    import structlog.contextvars

    variables = getattr(structlog.contextvars, "_CONTEXT_VARS", None)
    return variables if isinstance(variables, dict) else None
