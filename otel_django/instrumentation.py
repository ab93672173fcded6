"""Instrumentations applied when their library is first imported, in both ways in.

* The installed ``opentelemetry_instrumentor`` entry points, as ``opentelemetry-instrument``
  applies them: minus ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` (``*`` for all) and minus
  ``django``, whose server spans otel_django's middleware makes. In the ``INSTALLED_APPS``
  way in :func:`apply_installed` does it; under the wrapper the distro's
  ``load_instrumentor`` calls :func:`when_imported` for each entry point the wrapper hands it.
* otel_django's own support of SQLAlchemy, Celery and connection pools (``startup.py``).

Nothing is imported because a package is installed: an instrumentation is applied when the
application imports the library it instruments (a post-import hook: wrapt's, which the
instrumentations already depend on), or at once when the library is already imported. An
entry point whose name is no importable module (``system_metrics``) is applied at once.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Callable, Collection, Iterable
from types import ModuleType
from typing import Any

logger = logging.getLogger("otel_django")

# Instrumentors that otel_django replaces: its middleware makes the server spans.
REPLACED_INSTRUMENTORS = frozenset({"django"})


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def when_imported(module: str, callback: Callable[[ModuleType | None], object]) -> bool:
    """Calls ``callback`` once ``module`` is imported: now if it is, else from the import.

    Returns False, calling nothing, when ``module`` cannot be imported at all. The callback
    runs inside the application's ``import`` statement: failures are logged, never raised.
    """

    def run(imported: ModuleType | None) -> None:
        try:
            callback(imported)
        except Exception:
            logger.exception("otel_django could not instrument %s", module)

    top_level = module.partition(".")[0]
    if module in sys.modules:
        run(sys.modules[module])
        return True
    if not _importable(top_level):
        return False
    import wrapt

    wrapt.register_post_import_hook(run, module)
    return True


def _entry_points() -> Iterable[Any]:
    from importlib.metadata import entry_points

    return entry_points(group="opentelemetry_instrumentor")


def _instrument(entry_point: Any, **kwargs: Any) -> None:
    """What the wrapper does for one entry point: dependency check, then ``instrument()``."""
    from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

    dist = getattr(entry_point, "dist", None)
    conflict = get_dist_dependency_conflicts(dist) if dist is not None else None
    if conflict is not None:
        logger.debug("instrumentation %s skipped: %s", entry_point.name, conflict)
        return
    instrumentor = entry_point.load()()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(skip_dep_check=True, **kwargs)


def apply_lazily(entry_point: Any, apply: Callable[[], None]) -> None:
    """Runs ``apply`` when the library the entry point is named after is imported.

    An entry point named after no importable module is applied at once (the wrapper's way).
    """
    names = dict.fromkeys((entry_point.name, entry_point.name.replace("-", "_")))
    for name in names:
        if when_imported(name, lambda module: apply()):
            return
    apply()


def apply_installed(disabled: Collection[str] = frozenset()) -> list[str]:
    """Applies the installed instrumentors (the ``INSTALLED_APPS`` way in) but the
    ``disabled`` ones (``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``); their names."""
    if "*" in disabled:
        return []
    applied = []
    for entry_point in _entry_points():
        if entry_point.name in disabled or entry_point.name in REPLACED_INSTRUMENTORS:
            continue

        def apply(entry_point: Any = entry_point) -> None:
            try:
                _instrument(entry_point)
            except ImportError as exc:
                logger.debug("instrumentation %s skipped: %s", entry_point.name, exc)

        apply_lazily(entry_point, apply)
        applied.append(entry_point.name)
    return applied
