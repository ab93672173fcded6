"""Builds the TracerProvider from the configuration."""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)

from ..config import Config
from .exporter import GuardedOTLPSpanExporter


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


def build_span_processor(config: Config) -> SpanProcessor | None:
    if config.traces_exporter == "otlp":
        return BatchSpanProcessor(
            GuardedOTLPSpanExporter(config.otlp_endpoint),
            max_queue_size=config.span_queue_size,
            max_export_batch_size=min(512, config.span_queue_size),
        )
    if config.traces_exporter == "console":
        from .console import ConsoleTreeExporter

        # Development: print each request's tree as soon as it ends.
        return SimpleSpanProcessor(ConsoleTreeExporter())
    return None


def build_tracer_provider(config: Config, resource: Resource) -> TracerProvider:
    provider = TracerProvider(resource=resource, sampler=build_sampler(config))
    processor = build_span_processor(config)
    if processor is not None:
        provider.add_span_processor(processor)
    return provider
