"""Builds the TracerProvider from the configuration."""

from __future__ import annotations

import logging

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)

from ..config import Config
from .exporter import GuardedOTLPSpanExporter

logger = logging.getLogger(__name__)


def build_sampler(config: Config) -> Sampler:
    name, ratio = config.traces_sampler, config.traces_sampler_arg
    root: Sampler
    if name.endswith("always_on"):
        root = ALWAYS_ON
    elif name.endswith("always_off"):
        root = ALWAYS_OFF
    else:
        root = TraceIdRatioBased(ratio)
    return ParentBased(root) if name.startswith("parentbased_") else root


def build_span_exporter(config: Config) -> SpanExporter | None:
    if config.traces_exporter == "otlp":
        return GuardedOTLPSpanExporter(config.otlp_endpoint)
    if config.traces_exporter == "console":
        from .console import ConsoleTreeExporter

        return ConsoleTreeExporter()
    return None


def build_tracer_provider(config: Config, resource: Resource) -> TracerProvider:
    provider = TracerProvider(resource=resource, sampler=build_sampler(config))
    exporter = build_span_exporter(config)
    if exporter is not None:
        provider.add_span_processor(
            BatchSpanProcessor(exporter, max_queue_size=config.span_queue_size,
                               max_export_batch_size=min(512, config.span_queue_size))
        )
    return provider
