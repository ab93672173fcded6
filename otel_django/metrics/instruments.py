"""The histograms instrumentations record into on the request and query paths.

A :class:`Histogram` is built with the source of the process's pipeline (the
:class:`~otel_django.runtime.Runtime`, whose ``pipeline`` is set when otel_django builds the
MeterProvider). It records into that pipeline's in-place aggregate (``aggregate.py``), and into
an ordinary SDK histogram of the global meter while there is none (the application set up its
own MeterProvider). It binds at its first measurement and again whenever the source's pipeline
changes, which is what happens after a pre-fork server forks a worker: an instrument created in
the master (``--preload``) records into the worker's own pipeline.

``record()`` takes the span context of the measurement's span, if the caller has one at hand
(the request's server span, the query's span): the in-place aggregate may keep it as the
bucket's exemplar. The SDK fallback ignores it and samples exemplars from the current context,
with the provider's own exemplar filter.
"""

from __future__ import annotations

from typing import Any, Protocol

from opentelemetry import metrics
from opentelemetry.trace import SpanContext

from .. import __version__
from .aggregate import AttributeValues, HistogramSpec
from .pipeline import Pipeline

_ATTRIBUTE_CACHE_MAX = 4096
_UNBOUND: Any = object()


class PipelineSource(Protocol):
    """Where an instrument finds the process's pipeline (``None``: not built by otel_django)."""

    @property
    def pipeline(self) -> Pipeline | None: ...


class _Recorder(Protocol):
    def record(
        self, value: float, values: AttributeValues, span_context: SpanContext | None = None
    ) -> None: ...


class _SdkHistogram:
    """The fallback: an SDK histogram, given attribute dicts built once per value tuple."""

    def __init__(self, spec: HistogramSpec, scope: str) -> None:
        self._spec = spec
        self._instrument = metrics.get_meter(scope, __version__).create_histogram(
            spec.name,
            unit=spec.unit,
            description=spec.description,
            explicit_bucket_boundaries_advisory=list(spec.bounds),
        )
        self._attributes: dict[AttributeValues, dict[str, Any]] = {}

    def record(
        self, value: float, values: AttributeValues, span_context: SpanContext | None = None
    ) -> None:
        attributes = self._attributes.get(values)
        if attributes is None:
            attributes = self._spec.attributes(values)
            if len(self._attributes) < _ATTRIBUTE_CACHE_MAX:
                self._attributes[values] = attributes
        self._instrument.record(value, attributes)


class Histogram:
    """A histogram with fixed attribute names, recorded with a tuple of their values."""

    __slots__ = ("_bound_to", "_recorder", "_scope", "_source", "spec")

    def __init__(self, spec: HistogramSpec, scope: str, source: PipelineSource) -> None:
        self.spec = spec
        self._scope = scope
        self._source = source
        self._bound_to: Pipeline | None = _UNBOUND
        self._recorder: _Recorder | None = None

    def record(
        self, value: float, values: AttributeValues, span_context: SpanContext | None = None
    ) -> None:
        """``values`` has one entry per ``spec.attribute_names``, ``None`` where absent;
        ``span_context`` is that of the span the measurement belongs to (for exemplars)."""
        recorder = self._recorder
        pipeline = self._source.pipeline
        if recorder is None or pipeline is not self._bound_to:
            recorder = self._bind(pipeline)
        recorder.record(value, values, span_context)

    def _bind(self, pipeline: Pipeline | None) -> _Recorder:
        recorder: _Recorder = (
            pipeline.histogram(self.spec)
            if pipeline is not None
            else _SdkHistogram(self.spec, self._scope)
        )
        self._recorder, self._bound_to = recorder, pipeline
        return recorder
