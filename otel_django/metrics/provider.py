"""Builds the MeterProvider from the configuration."""

from __future__ import annotations

import logging
import os

from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.view import DropAggregation, View
from opentelemetry.sdk.resources import Resource

from .. import servers
from ..config import Config
from . import cardinality, multiprocess
from .pipeline import Pipeline
from .reader import ScrapeReader

logger = logging.getLogger("otel_django.metrics")

# Deprecated duplicates of metrics otel_django emits under their stable names.
DROPPED_INSTRUMENTS = ("db.client.connections.usage",)

_pipeline: Pipeline | None = None


def build_meter_provider(config: Config, resource: Resource) -> MeterProvider:
    global _pipeline
    cardinality.install(config.metrics_cardinality_limit)
    reader = ScrapeReader()
    views = [
        View(instrument_name=name, aggregation=DropAggregation()) for name in DROPPED_INSTRUMENTS
    ]
    # Exemplars are not exposed on /metrics; sampling them costs every measurement in a trace.
    exemplar_filter = (
        None if os.environ.get("OTEL_METRICS_EXEMPLAR_FILTER") else AlwaysOffExemplarFilter()
    )
    provider = MeterProvider(
        resource=resource, metric_readers=[reader], views=views, exemplar_filter=exemplar_filter
    )
    pipeline = Pipeline(reader, config.metrics_cardinality_limit)
    if multiprocess.wanted(config.metrics_multiprocess_dir, config.prefork):
        if servers.in_prefork_master("auto"):
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
    _pipeline = pipeline
    return provider


def _start_exchange(pipeline: Pipeline, config: Config) -> None:
    directory = multiprocess.default_directory(config.metrics_multiprocess_dir)
    multiprocess.remove_stale_directories(config.metrics_multiprocess_dir)
    try:
        pipeline.start_exchange(directory)
    except OSError as exc:
        logger.error(
            "metrics of this worker cannot be merged with the other workers' (%s): "
            "each scrape shows only the worker that answers it",
            exc,
        )


def pipeline() -> Pipeline | None:
    """The metrics pipeline of this process, if otel_django built its MeterProvider."""
    return _pipeline


def scrape_reader() -> ScrapeReader | None:
    """The reader of this process's MeterProvider, if otel_django built it."""
    return _pipeline.reader if _pipeline is not None else None
