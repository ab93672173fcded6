"""One request-benchmark configuration, alone in its own process.

The configurations need different Django settings and different global OTel providers, so
each runs in a child process started by ``bench_requests``::

    python -m benchmarks.request_worker --config otel_django --db /tmp/x/bench.sqlite3

The worker configures Django for its configuration, builds ``WSGIHandler()``, checks that one
request answers 200 with the product, prints ``ready {json}`` and then serves commands, one a
line, on stdin; answers go to the original stdout, one a line:

* ``run N Q`` -> ``ok <wall ns> <cpu ns>``: N requests to the view that runs Q ORM queries,
  timed by the worker;
* ``flush`` -> ``ok``: every span ended so far exported (``force_flush`` on this thread);
* ``stats`` -> ``ok {json}``: requests served, middleware chain;
* ``quit`` or end of input: exit.

Spans go over OTLP/HTTP to the receiver the parent started (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``benchmarks/otlp_sink.py``), each configuration with its own ``OTEL_SERVICE_NAME``; the
exporter's work is part of the worker's CPU time.

``--count Q:R,... --helper PATH --out FILE`` is the instruction-count mode: the worker runs
under callgrind (see ``callgrind.py`` and ``bench_instructions.py``), warms up, then for each
Q runs R requests, each between a zero and a dump of callgrind's counters, then one window
that exports every span of them (``flush``); it writes which requests were sampled to FILE.

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

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span, SpanProcessor

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "examples" / "demo"
PRODUCT_NAME = "Benchmark product"

Stack = Literal["django", "prometheus", "upstream", "otel_django", "logfire"]


def url_path(queries: int) -> str:
    """The benchmarked view: ``queries`` ORM queries, then 38 bytes of JSON."""
    return f"/bench/queries/{queries}/"


@dataclasses.dataclass(frozen=True)
class Configuration:
    key: str
    label: str
    stack: Stack
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    otel_django: Mapping[str, object] = dataclasses.field(default_factory=dict)
    query_observer: bool = True
    description: str = ""

    @property
    def traced(self) -> bool:
        return self.stack in {"upstream", "otel_django", "logfire"}

    @property
    def sampling_ratio(self) -> float:
        """The share of requests whose spans are recorded, by construction of the config."""
        if not self.traced or self.env.get("OTEL_TRACES_SAMPLER") == "always_off":
            return 0.0 if self.traced else 1.0
        return float(self.env.get("OTEL_TRACES_SAMPLER_ARG", "1.0"))


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
            description="DjangoInstrumentor + SQLite3Instrumentor, SDK tracer + "
            "BatchSpanProcessor(OTLPSpanExporter), PrometheusMetricReader; "
            "OTEL_SEMCONV_STABILITY_OPT_IN unset (upstream default)",
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
            description="traces 100 % over OTLP, metrics, request id, JSON access log, "
            "DB spans and metric, slow-query/N+1 hooks",
        ),
        Configuration(
            "otel_django_10pct",
            "5. otel_django, 10 % sampled",
            "otel_django",
            env={"OTEL_TRACES_SAMPLER_ARG": "0.1"},
            description="as 4, new traces sampled at 10 %",
        ),
        Configuration(
            "logfire",
            "6. Pydantic Logfire",
            "logfire",
            description="logfire.configure(send_to_logfire=False) exporting over OTLP, "
            "instrument_django() + instrument_sqlite3()",
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
            # Spans over OTLP to OTEL_EXPORTER_OTLP_ENDPOINT, the parent's receiver.
            "TRACES_EXPORTER": "otlp",
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


class RootCounter(SpanProcessor):
    """Counts the local roots started (recorded): tells which requests a ratio sampler kept.

    Registered only in configurations that sample a ratio; it costs a method call per
    recorded span."""

    def __init__(self) -> None:
        self.roots = 0

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if span.parent is None or span.parent.is_remote:
            self.roots += 1


def _setup_upstream() -> None:
    """What ``opentelemetry-instrument`` does before Django starts, exporting spans over
    OTLP/HTTP with upstream's exporter (it reads OTEL_EXPORTER_OTLP_ENDPOINT)."""
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    # PrometheusMetricReader registers with prometheus_client; its HTTP server is not started.
    metrics.set_meter_provider(
        MeterProvider(resource=resource, metric_readers=[PrometheusMetricReader()])
    )
    DjangoInstrumentor().instrument()
    SQLite3Instrumentor().instrument()


def _setup_logfire() -> None:
    """Logfire as its docs set it up for another OTLP backend: no token, nothing sent to
    Logfire itself, spans over OTLP to OTEL_EXPORTER_OTLP_ENDPOINT."""
    import logfire

    logfire.configure(send_to_logfire=False, console=False)
    logfire.instrument_django()
    logfire.instrument_sqlite3()


def _after_otel_django_setup(config: Configuration) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        raise RuntimeError(f"otel_django did not set up an SDK TracerProvider: {provider!r}")
    if not config.query_observer:
        from django.db import connections
        from django.db.backends.signals import connection_created

        connection_created.disconnect(dispatch_uid="otel_django.db")
        for connection in connections.all(initialized_only=True):
            connection.execute_wrappers.clear()


def _root_counter(config: Configuration) -> RootCounter | None:
    if not config.traced or config.sampling_ratio in {0.0, 1.0}:
        return None
    from opentelemetry import trace

    counter = RootCounter()
    trace.get_tracer_provider().add_span_processor(counter)  # type: ignore[attr-defined]
    return counter


def flush_spans(config: Configuration) -> None:
    """Exports every span ended so far, on this thread."""
    if config.stack == "logfire":
        import logfire

        logfire.force_flush()
    elif config.traced:
        from opentelemetry import trace

        trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]


@dataclasses.dataclass
class App:
    """A configured WSGI application and the means to call it the way a server would."""

    config: Configuration
    handler: Callable[..., Iterable[bytes]]
    root_counter: RootCounter | None = None
    requests: int = 0
    status: str = ""

    def _start_response(self, status: str, headers: object, exc_info: object = None) -> None:
        self.status = status

    def environ(self, queries: int = 1) -> dict[str, Any]:
        return {
            "REQUEST_METHOD": "GET",
            "SCRIPT_NAME": "",
            "PATH_INFO": url_path(queries),
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

    def request(self, queries: int = 1) -> bytes:
        environ = self.environ(queries)
        environ["wsgi.input"] = io.BytesIO(b"")
        response = self.handler(environ, self._start_response)
        try:
            return b"".join(response)
        finally:
            close = getattr(response, "close", None)
            if close is not None:
                close()

    def run(self, n: int, queries: int = 1) -> tuple[int, int]:
        """Serves ``n`` requests; returns the nanoseconds they took: wall clock and CPU time
        of this process (all its threads, so the batch span processor's export counts).

        GC is collected before and stays on: the garbage a configuration makes is its cost.
        """
        base = self.environ(queries)
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

    def check(self, queries: int = 1) -> None:
        body = self.request(queries)
        if not self.status.startswith("200") or PRODUCT_NAME.encode() not in body:
            raise RuntimeError(
                f"{self.config.key}: GET {url_path(queries)} -> {self.status}: {body[:300]!r}"
            )
        self.requests += 1

    def flush(self) -> None:
        flush_spans(self.config)

    def stats(self) -> dict[str, object]:
        from django.conf import settings

        return {
            "config": self.config.key,
            "requests": self.requests,
            "middleware": list(settings.MIDDLEWARE),
        }

    def count(
        self,
        plan: Sequence[tuple[int, int]],
        counter: Any,
        warmup: int = 30,
        both_kinds: bool = True,
    ) -> dict[str, Any]:
        """The instruction-count mode (under callgrind): see the module docstring.

        Windows: ``calibration`` (an empty one, five times: the cost of the client requests
        themselves), then per (queries, requests) of ``plan`` one window per request,
        ``q=Q request=I``, and ``q=Q flush``. Returns which requests were sampled. A
        configuration sampling a ratio serves more than R requests when needed to see at
        least one sampled and one unsampled request."""
        environ = self.environ
        handler, start_response = self.handler, self._start_response
        for queries, _ in plan:  # warm-up, uninstrumented: caches, specialised bytecode
            for _ in range(warmup):
                self.check(queries)
        self.flush()
        counter.start_instrumentation()
        for _ in range(5):
            counter.zero()
            counter.dump("calibration")
        sampled: dict[str, list[bool]] = {}
        for queries, requests in plan:
            base = environ(queries)
            flags = sampled[str(queries)] = []
            gc.collect()
            i = 0
            # A ratio-sampled configuration runs on until it has seen both kinds of request.
            while i < requests or (
                both_kinds
                and self.root_counter is not None
                and len(set(flags)) < 2
                and i < 20 * requests
            ):
                request_environ = base.copy()
                request_environ["wsgi.input"] = io.BytesIO(b"")
                roots = self.root_counter.roots if self.root_counter is not None else 0
                counter.zero()
                response = handler(request_environ, start_response)
                for _chunk in response:
                    pass
                response.close()  # type: ignore[attr-defined]
                counter.dump(f"q={queries} request={i}")
                if self.root_counter is not None:
                    flags.append(self.root_counter.roots > roots)
                else:
                    flags.append(self.config.sampling_ratio == 1.0 and self.config.traced)
                if not self.status.startswith("200"):
                    raise RuntimeError(f"{self.config.key}: {url_path(queries)} -> {self.status}")
                i += 1
            self.requests += i
            counter.zero()
            self.flush()
            counter.dump(f"q={queries} flush")
        return {"config": self.config.key, "sampled": sampled}


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
    if config.stack == "upstream":
        _setup_upstream()
    elif config.stack == "logfire":
        _setup_logfire()
    django.setup()
    if config.stack == "otel_django":
        _after_otel_django_setup(config)
    from django.core.handlers.wsgi import WSGIHandler

    app = App(config, WSGIHandler(), _root_counter(config))
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
                n, _, queries = arg.partition(" ")
                wall_ns, cpu_ns = app.run(int(n), int(queries or 1))
                answer = f"ok {wall_ns} {cpu_ns}"
            elif verb == "flush":
                app.flush()
                answer = "ok"
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
    parser.add_argument("--count", metavar="Q:R,...", help="instruction-count mode")
    parser.add_argument("--helper", help="the callgrind helper library (with --count)")
    parser.add_argument("--out", help="where --count writes which requests were sampled")
    parser.add_argument("--warmup", type=int, default=30, help="warm-up requests (with --count)")
    parser.add_argument(
        "--any-kinds",
        action="store_true",
        help="with --count: R requests even if all were sampled or none (quick runs)",
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
    if args.count:
        from .callgrind import Counter

        counter = Counter(args.helper)
        if not counter.on_valgrind:
            raise SystemExit("--count: not running under valgrind")
        plan = [tuple(int(x) for x in item.split(":")) for item in args.count.split(",")]
        result = app.count(plan, counter, args.warmup, not args.any_kinds)  # type: ignore[arg-type]
        Path(args.out).write_text(json.dumps({**result, "stats": app.stats()}))
        return 0
    answers.write("ready " + json.dumps(app.stats()) + "\n")
    serve(app, sys.stdin, answers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
