"""One request-benchmark configuration, alone in its own process.

The configurations need different Django settings and different global OTel providers, so
each runs in a child process started by ``bench_requests``::

    python -m benchmarks.request_worker --config otel_django --db /tmp/x/bench.sqlite3

The worker configures Django for its configuration, builds ``WSGIHandler()``, checks that one
request answers 200 with the product, prints ``ready {json}`` and then serves commands, one a
line, on stdin; answers go to the original stdout, one a line:

* ``run N`` -> ``ok <wall ns> <cpu ns>``: N requests to the same view, timed by the worker;
* ``stats`` -> ``ok {json}``: requests served, spans exported, middleware chain;
* ``quit`` or end of input: exit.

File descriptor 1 is pointed at ``/dev/null`` before Django starts, so log lines are rendered
(that cost is measured) but no terminal I/O is. Errors are answered ``error <message>``.

``--prepare`` creates the SQLite database every worker reads (migrations, one product).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import io
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "examples" / "demo"
URL_PATH = "/bench/products/1/"
PRODUCT_NAME = "Benchmark product"

Stack = Literal["django", "prometheus", "upstream", "otel_django"]


@dataclasses.dataclass(frozen=True)
class Configuration:
    key: str
    label: str
    stack: Stack
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    otel_django: Mapping[str, object] = dataclasses.field(default_factory=dict)
    query_observer: bool = True
    description: str = ""


CONFIGURATIONS: dict[str, Configuration] = {
    c.key: c
    for c in (
        Configuration("bare", "1. bare Django", "django", description="the demo's middleware"),
        Configuration(
            "prometheus",
            "2. django-prometheus",
            "prometheus",
            description="its two middlewares and its sqlite3 DB backend",
        ),
        Configuration(
            "upstream",
            "3. upstream OTel",
            "upstream",
            description="DjangoInstrumentor, SDK tracer + BatchSpanProcessor(null exporter), "
            "PrometheusMetricReader; OTEL_SEMCONV_STABILITY_OPT_IN unset (upstream default)",
        ),
        Configuration(
            "upstream_stable",
            "3b. upstream OTel, stable semconv",
            "upstream",
            env={"OTEL_SEMCONV_STABILITY_OPT_IN": "http"},
            description="as 3 with OTEL_SEMCONV_STABILITY_OPT_IN=http (otel_django's names)",
        ),
        Configuration(
            "otel_django",
            "4. otel_django, all on",
            "otel_django",
            env={"OTEL_TRACES_SAMPLER_ARG": "1.0"},
            description="traces 100 %, metrics, request id, JSON access log, slow-query/N+1 hooks",
        ),
        Configuration(
            "otel_django_10pct",
            "5. otel_django, 10 % sampled",
            "otel_django",
            env={"OTEL_TRACES_SAMPLER_ARG": "0.1"},
            description="as 4, new traces sampled at 10 %",
        ),
        # Ablations of configuration 4: each switches one concern off.
        Configuration(
            "otel_django_unsampled",
            "4 with traces sampled at 0 %",
            "otel_django",
            env={"OTEL_TRACES_SAMPLER": "always_off"},
            description="spans are created but not recorded",
        ),
        Configuration(
            "otel_django_no_metrics",
            "4 without metrics",
            "otel_django",
            otel_django={"METRICS_ENABLED": False},
        ),
        Configuration(
            "otel_django_no_access_log",
            "4 without access log",
            "otel_django",
            otel_django={"ACCESS_LOG": False},
        ),
        Configuration(
            "otel_django_no_db",
            "4 without query observer",
            "otel_django",
            query_observer=False,
            description="otel_django's execute wrapper removed (not a setting: measurement only)",
        ),
    )
}

_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]


def django_settings(config: Configuration, db_path: str) -> dict[str, Any]:
    """The demo project's settings, reduced to what the benchmarked view needs."""
    apps = ["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions"]
    middleware = list(_MIDDLEWARE)
    engine = "django.db.backends.sqlite3"
    extra: dict[str, Any] = {}
    if config.stack == "prometheus":
        apps.append("django_prometheus")
        middleware = [
            "django_prometheus.middleware.PrometheusBeforeMiddleware",
            *middleware,
            "django_prometheus.middleware.PrometheusAfterMiddleware",
        ]
        engine = "django_prometheus.db.backends.sqlite3"
    elif config.stack == "otel_django":
        apps.append("otel_django")
        extra["OTEL_DJANGO"] = {
            "SERVICE_NAME": "bench",
            "TRACES_EXPORTER": "none",  # the worker adds a batch processor to a null exporter
            "METRICS_PASSWORD": "bench-not-secret",
            **config.otel_django,
        }
    return {
        "DEBUG": False,
        "SECRET_KEY": "benchmark-only-not-secret",
        "ALLOWED_HOSTS": ["*"],
        "INSTALLED_APPS": [*apps, "shop"],
        "MIDDLEWARE": middleware,
        "ROOT_URLCONF": "benchmarks.request_urls",
        "USE_TZ": True,
        "DEFAULT_AUTO_FIELD": "django.db.models.BigAutoField",
        # Persistent connection: per-request overhead is measured, not connection setup.
        "DATABASES": {"default": {"ENGINE": engine, "NAME": db_path, "CONN_MAX_AGE": None}},
        **extra,
    }


class NullSpanExporter(SpanExporter):
    """Drops spans, counting them: export costs nothing, so what is measured is the rest."""

    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def _null_exporter() -> tuple[BatchSpanProcessor, NullSpanExporter]:
    exporter = NullSpanExporter()
    # Default batch parameters, as the SDK configurator uses them.
    return BatchSpanProcessor(exporter), exporter


def _setup_upstream() -> NullSpanExporter:
    """What ``opentelemetry-instrument`` does before Django starts (minus the exporter I/O)."""
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    resource = Resource.create({"service.name": "bench"})
    provider = TracerProvider(resource=resource)
    processor, exporter = _null_exporter()
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    # PrometheusMetricReader registers with prometheus_client; its HTTP server is not started.
    metrics.set_meter_provider(
        MeterProvider(resource=resource, metric_readers=[PrometheusMetricReader()])
    )
    DjangoInstrumentor().instrument()
    return exporter


def _after_otel_django_setup(config: Configuration) -> NullSpanExporter:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        raise RuntimeError(f"otel_django did not set up an SDK TracerProvider: {provider!r}")
    processor, exporter = _null_exporter()
    provider.add_span_processor(processor)
    if not config.query_observer:
        from django.db import connections
        from django.db.backends.signals import connection_created

        connection_created.disconnect(dispatch_uid="otel_django.db")
        for connection in connections.all(initialized_only=True):
            connection.execute_wrappers.clear()
    return exporter


@dataclasses.dataclass
class App:
    """A configured WSGI application and the means to call it the way a server would."""

    config: Configuration
    handler: Callable[..., Iterable[bytes]]
    exporter: NullSpanExporter | None
    requests: int = 0
    status: str = ""

    def _start_response(self, status: str, headers: object, exc_info: object = None) -> None:
        self.status = status

    def environ(self) -> dict[str, Any]:
        return {
            "REQUEST_METHOD": "GET",
            "SCRIPT_NAME": "",
            "PATH_INFO": URL_PATH,
            "QUERY_STRING": "",
            "SERVER_NAME": "bench.example",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "10.0.0.1",
            "HTTP_HOST": "bench.example",
            "HTTP_USER_AGENT": "otel-django-bench/1.0",
            "HTTP_ACCEPT": "application/json",
            "HTTP_ACCEPT_ENCODING": "gzip, deflate",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }

    def request(self) -> bytes:
        environ = self.environ()
        environ["wsgi.input"] = io.BytesIO(b"")
        response = self.handler(environ, self._start_response)
        try:
            return b"".join(response)
        finally:
            close = getattr(response, "close", None)
            if close is not None:
                close()

    def run(self, n: int) -> tuple[int, int]:
        """Serves ``n`` requests; returns the nanoseconds they took: wall clock and CPU time
        of this process (all its threads, so the batch span processor's export counts).

        GC is collected before and stays on: the garbage a configuration makes is its cost.
        """
        base = self.environ()
        handler, start_response = self.handler, self._start_response
        gc.collect()
        cpu_start = time.process_time_ns()
        start = time.perf_counter_ns()
        for _ in range(n):
            environ = base.copy()
            environ["wsgi.input"] = io.BytesIO(b"")
            response = handler(environ, start_response)
            for _chunk in response:
                pass
            response.close()  # type: ignore[attr-defined]
        elapsed = time.perf_counter_ns() - start
        cpu = time.process_time_ns() - cpu_start
        self.requests += n
        return elapsed, cpu

    def check(self) -> None:
        body = self.request()
        if not self.status.startswith("200") or PRODUCT_NAME.encode() not in body:
            raise RuntimeError(
                f"{self.config.key}: GET {URL_PATH} -> {self.status}: {body[:300]!r}"
            )
        self.requests += 1

    def stats(self) -> dict[str, object]:
        from django.conf import settings

        spans = None
        if self.exporter is not None:
            from opentelemetry import trace

            trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
            spans = self.exporter.exported
        return {
            "config": self.config.key,
            "requests": self.requests,
            "spans_exported": spans,
            "middleware": list(settings.MIDDLEWARE),
        }


def build_app(config: Configuration, db_path: str, env: Mapping[str, str] | None = None) -> App:
    """Configures Django (and OTel) in this process for ``config``. Once per process.

    ``env`` adds environment variables for an experiment (``OTEL_DJANGO_ACCESS_LOG=false``...).
    """
    os.environ.update(config.env)
    os.environ.update(env or {})
    if str(DEMO) not in sys.path:
        sys.path.insert(0, str(DEMO))
    import django
    from django.conf import settings

    settings.configure(**django_settings(config, db_path))
    exporter = _setup_upstream() if config.stack == "upstream" else None
    django.setup()
    if config.stack == "otel_django":
        exporter = _after_otel_django_setup(config)
    from django.core.handlers.wsgi import WSGIHandler

    app = App(config, WSGIHandler(), exporter)
    app.check()
    return app


def prepare_database(db_path: str) -> None:
    """Creates the database all workers read: migrated, one category, one product (pk 1)."""
    if str(DEMO) not in sys.path:
        sys.path.insert(0, str(DEMO))
    import django
    from django.conf import settings
    from django.core.management import call_command

    settings.configure(**django_settings(CONFIGURATIONS["bare"], db_path))
    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    from shop.models import Category, Product

    category = Category._default_manager.create(name="Benchmarks")
    Product._default_manager.create(pk=1, name=PRODUCT_NAME, price_cents=100, category=category)


def clean_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The parent's environment without settings that would change what is measured."""
    prefixes = ("OTEL_", "PROMETHEUS_", "SENTRY_", "DJANGO_")
    clean = {k: v for k, v in environ.items() if not k.startswith(prefixes)}
    # The dev extra installs the sqlite3 DB-API instrumentation (for the contract tests);
    # otel_django applies installed instrumentations, so it is switched off to measure the same.
    clean["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = "sqlite3"
    return clean


def parse_env(items: Iterable[str]) -> dict[str, str]:
    env = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"expected NAME=VALUE, got {item!r}")
        env[name] = value
    return env


def serve(app: App, commands: io.TextIOBase | Any, answers: io.TextIOBase | Any) -> None:
    for line in commands:
        verb, _, arg = line.strip().partition(" ")
        try:
            if verb == "run":
                wall_ns, cpu_ns = app.run(int(arg))
                answer = f"ok {wall_ns} {cpu_ns}"
            elif verb == "stats":
                answer = "ok " + json.dumps(app.stats())
            elif verb in {"quit", ""}:
                return
            else:
                answer = f"error unknown command {verb!r}"
        except Exception as exc:
            answer = f"error {type(exc).__name__}: {exc}".replace("\n", " ")
        answers.write(answer + "\n")
        answers.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--config", choices=sorted(CONFIGURATIONS))
    parser.add_argument("--db", required=True)
    parser.add_argument("--prepare", action="store_true")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra environment variable for an experiment",
    )
    args = parser.parse_args(argv)
    if args.prepare:
        prepare_database(args.db)
        return 0
    if args.config is None:
        parser.error("--config is required")
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    try:
        app = build_app(CONFIGURATIONS[args.config], args.db, parse_env(args.env))
    except Exception as exc:
        answers.write(f"error {type(exc).__name__}: {exc}".replace("\n", " ") + "\n")
        raise
    answers.write("ready " + json.dumps(app.stats()) + "\n")
    serve(app, sys.stdin, answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
