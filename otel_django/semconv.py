"""Attribute names and values that more than one component writes, defined once.

- :data:`REQUEST_ID_ATTRIBUTE`: the request id on spans and exported log records;
- :func:`error_type`: the ``error.type`` of an exception, its fully qualified class name as the
  semantic conventions ask (``ValueError``, ``django.db.utils.OperationalError``);
- :func:`db_system`: ``db.system.name`` for a Django database vendor or a SQLAlchemy dialect.
"""

from __future__ import annotations

__all__ = ["DB_SYSTEMS", "REQUEST_ID_ATTRIBUTE", "db_system", "error_type"]

REQUEST_ID_ATTRIBUTE = "otel_django.request_id"

# Django's ``connection.vendor`` and SQLAlchemy's dialect names to the semantic conventions'
# ``db.system.name`` values; a name not listed is used as it is.
DB_SYSTEMS = {
    "postgresql": "postgresql",
    "sqlite": "sqlite",
    "mysql": "mysql",
    "mariadb": "mariadb",
    "oracle": "oracle.db",
    "microsoft": "microsoft.sql_server",  # Django's vendor (mssql-django)
    "mssql": "microsoft.sql_server",  # SQLAlchemy's dialect
}


def error_type(exception: BaseException | type[BaseException]) -> str:
    """The exception's class, qualified by its module unless it is a builtin."""
    cls = exception if isinstance(exception, type) else type(exception)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def db_system(name: str) -> str:
    return DB_SYSTEMS.get(name, name)
