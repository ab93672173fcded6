"""The cost of one log line with request and trace context, against the usual alternatives.

Every candidate writes one JSON line (the stdlib text line is the floor) to stdout, flushed,
as in production — file descriptor 1 points at ``os.devnull`` while timing — inside a
request: ``request_id`` bound in structlog's context variables and a sampled span current.
The alternatives get the same context the way their users add it: a processor (structlog) or
a filter (python-json-logger) reading the current span. Targets (issue 5): ≤ 10 µs per line
through a structlog logger, ≤ 20 µs through a stdlib logger; as ratios, in the same run: a
structlog line costs no more than a plain stdlib text line without any context, a stdlib
line no more than python-json-logger's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO

import structlog
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from benchmarks.harness import Comparison, Target, compare
from otel_django.config import load_config
from otel_django.logging import output
from otel_django.logging.output import LineLogger, LineWriter, PipelineHandler
from otel_django.logging.setup import build_processors
from otel_django.redaction import Redactor

EVENT = "order placed"


def _trace_ids(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """What a structlog user writes to get trace ids into lines."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = format(context.trace_id, "032x")
        event_dict["span_id"] = format(context.span_id, "016x")
    return event_dict


class _ContextFilter(logging.Filter):
    """What a python-json-logger user writes to get request and trace ids into records."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        record.request_id = structlog.contextvars.get_contextvars().get("request_id")
        return True


def _stdlib_logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


@contextlib.contextmanager
def _in_a_request() -> Iterator[None]:
    tracer = TracerProvider().get_tracer("bench")
    span = tracer.start_span("GET /orders/")
    tokens = structlog.contextvars.bind_contextvars(request_id="4bf92f3577b34da6a3ce929d0e0e4736")
    try:
        with trace.use_span(span, end_on_exit=True):
            yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


@contextlib.contextmanager
def _stdout_to_devnull() -> Iterator[TextIO]:
    """File descriptor 1 on ``os.devnull`` meanwhile: what is written to stdout costs the same
    system calls as to a pipe, and goes nowhere."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield sys.stdout
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def candidates(sink: TextIO) -> dict[str, Any]:
    config = load_config({}, {"SERVICE_NAME": "bench"})
    writer = LineWriter()  # sys.stdout, as configure_logging sets it up
    processors = build_processors(config)
    level_filter = structlog.make_filtering_bound_logger(logging.INFO)

    ours = structlog.wrap_logger(
        LineLogger("bench.orders", writer),
        processors=processors,
        wrapper_class=level_filter,
        context_class=dict,
        cache_logger_on_first_use=True,  # as configure_logging sets it up
    )
    stdlib_json_processors = [*processors[:-1], lambda _l, _m, ed: output._dumps_stdlib(ed)]
    ours_stdlib_json = structlog.wrap_logger(
        LineLogger("bench.orders", writer),
        processors=stdlib_json_processors,
        wrapper_class=level_filter,
        context_class=dict,
        cache_logger_on_first_use=True,
    )
    ours_stdlib = _stdlib_logger(
        "bench.otel_django", PipelineHandler(processors, writer, Redactor())
    )

    structlog_default = structlog.wrap_logger(
        structlog.PrintLogger(sink),
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _trace_ids,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=level_filter,
        context_class=dict,
        cache_logger_on_first_use=True,  # as structlog's performance guide advises
    )

    from pythonjsonlogger.json import JsonFormatter

    pjl_handler = logging.StreamHandler(sink)
    pjl_handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    pjl_handler.addFilter(_ContextFilter())
    pjl = _stdlib_logger("bench.pythonjsonlogger", pjl_handler)

    text_handler = logging.StreamHandler(sink)
    text_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    text = _stdlib_logger("bench.text", text_handler)

    extra = {"order_id": 42, "plan": "pro"}
    return {
        "stdlib text (no context)": lambda: text.info(EVENT, extra=extra),
        "otel_django structlog": lambda: ours.info(EVENT, order_id=42, plan="pro"),
        "otel_django structlog, stdlib json": lambda: ours_stdlib_json.info(
            EVENT, order_id=42, plan="pro"
        ),
        "otel_django stdlib": lambda: ours_stdlib.info(EVENT, extra=extra),
        "structlog JSONRenderer": lambda: structlog_default.info(EVENT, order_id=42, plan="pro"),
        "python-json-logger": lambda: pjl.info(EVENT, extra=extra),
    }


def run(quick: bool) -> list[Comparison]:
    with _stdout_to_devnull() as sink, _in_a_request():
        comparison = compare(
            "one log line with request_id, trace_id, span_id",
            candidates(sink),
            unit="log line",
            inner=300 if quick else 2000,
            rounds=5 if quick else 21,
            baseline="stdlib text (no context)",
            notes="Issue 5 targets: <= 10 us per line through a structlog logger, <= 20 us "
            "through a stdlib logger. 'stdlib json': the same pipeline without orjson.",
            targets=(
                Target(
                    "structlog line <= a plain stdlib text line",
                    "otel_django structlog",
                    "stdlib text (no context)",
                    1.0,
                    "median",
                ),
                Target(
                    "structlog line <= half of structlog's JSONRenderer line",
                    "otel_django structlog",
                    "structlog JSONRenderer",
                    0.5,
                    "median",
                ),
                Target(
                    "stdlib line <= python-json-logger's line",
                    "otel_django stdlib",
                    "python-json-logger",
                    1.0,
                    "median",
                ),
            ),
        )
    return [comparison]


if __name__ == "__main__":
    for result in run(quick="--quick" in sys.argv):
        print(result.title)
        for name, fig in result.figures.items():
            print(f"  {name:38s} {fig.median_us:7.2f} us  (IQR {fig.spread_pct:4.1f} %)")
        for target in result.targets:
            print(f"  {target.label}: {result.target_value(target):.2f} (at most {target.at_most})")
