"""``db.client.operation.duration``: one histogram for the Django ORM and SQLAlchemy hooks."""

from __future__ import annotations

from ..metrics.aggregate import AttributeValues, HistogramSpec
from .sql import QueryDescription

DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
DURATION = HistogramSpec(
    "db.client.operation.duration",
    "s",
    "Duration of database client operations.",
    DURATION_BUCKETS,
    ("db.system.name", "db.operation.name", "db.collection.name", "error.type"),
)


def duration_values(
    system: str, description: QueryDescription | None, error_type: str | None
) -> AttributeValues:
    """``db.client.operation.duration``'s attribute values, in ``DURATION`` order."""
    if description is None:
        return (system, None, None, error_type)
    return (system, description.operation or None, description.collection or None, error_type)
