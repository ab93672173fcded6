"""Builds the TracerProvider: sampler and span exporters from the configuration.

Each exporter is built with no arguments and handed to ``BatchSpanProcessor(exporter)``, so
``OTEL_EXPORTER_OTLP_*`` and ``OTEL_BSP_*`` work as the SDK documents them. ``console`` is
otel_django's tree printer on stderr, printed as each request ends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)

from ..config import Config
from ..export import Notes, batch_processor, build, choose
from .exporter import SPAN_EXPORTER_CLASSES, GuardedSpanExporter

DEFAULT_SAMPLER = "parentbased_traceidratio"
_BUILT_IN_SAMPLERS: Mapping[str, Callable[[float], Sampler]] = {
    "always_on": lambda ratio: ALWAYS_ON,
    "always_off": lambda ratio: ALWAYS_OFF,
    "parentbased_always_on": lambda ratio: ParentBased(ALWAYS_ON),
    "parentbased_always_off": lambda ratio: ParentBased(ALWAYS_OFF),
    "traceidratio": TraceIdRatioBased,
    "parentbased_traceidratio": lambda ratio: ParentBased(TraceIdRatioBased(ratio)),
}


def build_sampler(config: Config, notes: Notes | None = None) -> Sampler:
    """The sampler ``TRACES_SAMPLER`` names: one of the SDK's, or an
    ``opentelemetry_traces_sampler`` entry point called with ``OTEL_TRACES_SAMPLER_ARG``
    (as the SDK configurator does). A name that cannot be served is one warning naming the
    variable; the default sampler is used instead."""
    name, ratio = config.traces.sampler, config.traces.sampler_arg
    built_in = _BUILT_IN_SAMPLERS.get(name)
    if built_in is not None:
        return built_in(ratio)
    variable = "OTEL_TRACES_SAMPLER" if config.traces.sampler_from_environment else "TRACES_SAMPLER"
    try:
        from importlib.metadata import entry_points

        factory = next(iter(entry_points(group="opentelemetry_traces_sampler", name=name)), None)
        sampler = factory.load()(config.traces.sampler_arg_text) if factory else None
        if isinstance(sampler, Sampler):
            return sampler
        reason = "no such sampler is installed" if factory is None else "not a Sampler"
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
    (notes or Notes()).warn(
        f"{variable}={name!r} cannot be used ({reason}): using {DEFAULT_SAMPLER}"
    )
    return _BUILT_IN_SAMPLERS[DEFAULT_SAMPLER](ratio)


def _console() -> SpanExporter:
    from .console import ConsoleTreeExporter

    return ConsoleTreeExporter()


def build_span_processors(config: Config, notes: Notes) -> list[SpanProcessor]:
    environ = config.exporter_variables
    processors: list[SpanProcessor] = []
    own: dict[str, Callable[[], Any]] = {"console": _console}
    for choice in choose(
        "traces", config.traces.exporter, environ, notes, own, SPAN_EXPORTER_CLASSES
    ):
        exporter = build(choice, "traces", notes)
        if exporter is None:
            continue
        if choice.name == "console":
            # Development: each request's tree as soon as it ends.
            processors.append(SimpleSpanProcessor(exporter))
        else:
            processor = batch_processor(
                BatchSpanProcessor, GuardedSpanExporter(exporter), "OTEL_BSP", notes, environ
            )
            if processor is not None:
                processors.append(processor)
    return processors


def build_tracer_provider(
    config: Config, resource: Resource, notes: Notes | None = None
) -> TracerProvider:
    notes = notes or Notes()
    provider = TracerProvider(resource=resource, sampler=build_sampler(config, notes))
    for processor in build_span_processors(config, notes):
        provider.add_span_processor(processor)
    return provider
