"""Builds the MeterProvider and its readers from the configuration.

``METRICS_EXPORTER`` (``OTEL_METRICS_EXPORTER``) lists where metrics go:

* ``prometheus`` (default): pulled from the authenticated metrics view, merged over the
  workers of the server. Never upstream's unauthenticated port-9464 server.
* ``otlp``, ``console`` or any ``opentelemetry_metrics_exporter`` entry point: pushed by a
  ``PeriodicExportingMetricReader(exporter)`` built without arguments (so
  ``OTEL_METRIC_EXPORT_INTERVAL``/``_TIMEOUT`` and every ``OTEL_EXPORTER_OTLP_[METRICS_]*``
  variable apply), with the in-place histograms added (``push.py``). An entry point that is
  a ``MetricReader`` is registered as it is (it sees the SDK's metrics only; from
  opentelemetry-sdk 1.45.2 on, with the cardinality limits it was built with).
* ``none``: no metrics at all.

:func:`build_meter_provider` returns the provider and its :class:`~.pipeline.Pipeline`; startup
keeps the pipeline on the runtime, where instruments and the metrics view find it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import DropAggregation, View
from opentelemetry.sdk.resources import Resource

from .. import servers
from ..config import Config, Prefork
from ..export import Notes, build, choose
from . import cardinality, multiprocess
from .pipeline import Pipeline
from .reader import ScrapeReader

logger = logging.getLogger("otel_django.metrics")

# Deprecated duplicates of metrics otel_django emits under their stable names; and the SDK
# instruments of other instrumentations (DB-API ones record db.client.operation.duration for
# SQLAlchemy's statements) named like otel_django's in-place histograms, which already count
# the same operations: two definitions of one name would clash on the metrics view.
DROPPED_INSTRUMENTS = (
    "db.client.connections.usage",
    "db.client.operation.duration",
    "http.server.request.duration",
    "http.server.request.body.size",
    "http.server.response.body.size",
)


def _pulled() -> None:
    """``prometheus``: the metrics view, fed by the scrape reader every provider has."""
    return None


def _console() -> Any:
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

    return ConsoleMetricExporter(out=sys.stderr)  # stdout carries the JSON log lines


def push_readers(
    config: Config, resource: Resource, notes: Notes, pipeline: Pipeline | None = None
) -> list[MetricReader]:
    """A reader per configured exporter other than ``prometheus``."""
    readers: list[MetricReader] = []
    own: dict[str, Callable[[], Any]] = {"prometheus": _pulled, "console": _console}
    for choice in choose("metrics", config.metrics.exporter, config.exporter_variables, notes, own):
        built = build(choice, "metrics", notes)
        if built is None:
            continue
        if isinstance(built, MetricReader):
            readers.append(built)
        else:
            from .push import PushExporter

            readers.append(
                PeriodicExportingMetricReader(
                    PushExporter(built, lambda: pipeline, resource),
                    **cardinality.reader_options(config.metrics.cardinality_limit),
                )
            )
    return readers


def build_meter_provider(
    config: Config, resource: Resource, notes: Notes | None = None
) -> tuple[MeterProvider, Pipeline]:
    """The MeterProvider and the pipeline of its in-place histograms and scrapes."""
    notes = notes or Notes()
    reader = ScrapeReader(config.metrics.cardinality_limit)
    views = [
        View(instrument_name=name, aggregation=DropAggregation()) for name in DROPPED_INSTRUMENTS
    ]
    # otel_django's request and query histograms sample their own exemplars (aggregate.py,
    # METRICS_EXEMPLAR_FILTER); the SDK's instruments only when OTEL_METRICS_EXEMPLAR_FILTER
    # asks: sampling costs every measurement in a trace.
    exemplar_filter = None if config.metrics.sdk_exemplar_filter_set else AlwaysOffExemplarFilter()
    pipeline = Pipeline(reader, config.metrics.cardinality_limit, config.metrics.exemplar_filter)
    provider = MeterProvider(
        resource=resource,
        metric_readers=[reader, *push_readers(config, resource, notes, pipeline)],
        views=views,
        exemplar_filter=exemplar_filter,
    )
    if config.metrics_pulled and multiprocess.wanted(
        config.metrics.multiprocess_dir, config.prefork
    ):
        if servers.in_prefork_master(Prefork.AUTO):
            # Built in a pre-fork master all the same (PREFORK=false): the workers inherit this
            # provider, and each joins the exchange right after its fork.
            started: set[int] = set()

            def start_in_worker() -> None:
                if os.getpid() not in started:  # once, even where two fork hooks run
                    started.add(os.getpid())
                    _start_exchange(pipeline, config)

            servers.call_after_fork(start_in_worker)
        else:
            _start_exchange(pipeline, config)
    return provider, pipeline


def _start_exchange(pipeline: Pipeline, config: Config) -> None:
    directory = multiprocess.default_directory(config.metrics.multiprocess_dir)
    multiprocess.remove_stale_directories(config.metrics.multiprocess_dir)
    try:
        pipeline.start_exchange(directory)
    except OSError as exc:
        logger.error(
            "metrics of this worker cannot be merged with the other workers' (%s): "
            "each scrape shows only the worker that answers it",
            exc,
        )
