"""Where a configuration's time goes: the request benchmark under a profiler, split by concern.

    python -m benchmarks.profile_requests [--config otel_django] [--requests 3000]
                                          [--tool cprofile|pyinstrument] [--top 25]

Runs one configuration of ``bench_requests`` in this process, warms it up, profiles
``--requests`` requests and prints the self time per request of each concern (time spent in
that concern's own code; C functions count for the Python code that called them), then the
functions with most self time. cProfile adds a cost per Python call, so it inflates code made
of many small calls; pyinstrument (``pip install pyinstrument``) samples and distorts less.
Compare with the ablations of ``bench_requests``, which measure without a profiler.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import sysconfig
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, TextIO

from .bench_requests import prepare_database
from .otlp_sink import Sink
from .request_worker import CONFIGURATIONS, build_app

# First match wins: (fragment of the file path, concern).
CONCERNS: tuple[tuple[str, str], ...] = (
    ("otel_django/middleware.py", "otel_django middleware (own code)"),
    ("otel_django/db/", "DB observer (otel_django.db)"),
    ("otel_django/logging/", "logs (access log, structlog)"),
    ("structlog/", "logs (access log, structlog)"),
    ("logging/__init__.py", "logs (access log, structlog)"),
    ("otel_django/metrics/", "metrics record"),
    ("opentelemetry/sdk/metrics/", "metrics record"),
    ("opentelemetry/metrics/", "metrics record"),
    ("opentelemetry/sdk/trace/", "spans (create, attributes, end, sampler)"),
    ("opentelemetry/trace/", "spans (create, attributes, end, sampler)"),
    ("opentelemetry/attributes/", "spans (create, attributes, end, sampler)"),
    ("opentelemetry/context/", "context attach/detach, propagation"),
    ("opentelemetry/propagat", "context attach/detach, propagation"),
    ("opentelemetry/baggage/", "context attach/detach, propagation"),
    ("opentelemetry/instrumentation/", "upstream instrumentation (middleware, wsgi util)"),
    ("opentelemetry/util/http", "upstream instrumentation (middleware, wsgi util)"),
    ("opentelemetry/semconv", "upstream instrumentation (middleware, wsgi util)"),
    ("django_prometheus/", "django-prometheus"),
    ("prometheus_client/", "django-prometheus"),
    ("otel_django/", "otel_django (other)"),
    ("opentelemetry/", "opentelemetry (other)"),
    ("/django/", "Django and the view"),
    ("asgiref/", "Django and the view"),
    ("benchmarks/", "benchmark loop"),
    ("shop/", "Django and the view"),
)


_STDLIB = (
    sysconfig.get_paths()["stdlib"].replace(os.sep, "/") + "/",
    "<frozen",
    "<string>",
    "<built-in>",
    "~",
)


def concern_of(path: str) -> str | None:
    """The concern of code in ``path``; None for the stdlib, which works for its caller."""
    path = path.replace(os.sep, "/")
    if path.startswith(_STDLIB) and "site-packages" not in path:
        return None
    for fragment, concern in CONCERNS:
        if fragment in path:
            return concern
    return "other"


def _is_inherited(func: tuple[str, int, str]) -> bool:
    return concern_of(func[0]) is None


def by_concern_cprofile(stats: pstats.Stats) -> dict[str, float]:
    """Self seconds per concern. C and stdlib functions count for the concern of their
    callers, in proportion to the time each caller spent in them."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    memo: dict[Any, dict[str, float]] = {}

    def shares(func: Any, depth: int = 0) -> dict[str, float]:
        """How ``func``'s time divides among concerns (fractions summing to 1)."""
        if func in memo:
            return memo[func]
        if not _is_inherited(func):
            result = {str(concern_of(func[0])): 1.0}
        elif depth > 20 or func not in raw:
            result = {"other": 1.0}
        else:
            memo[func] = {"other": 1.0}  # recursion guard
            callers = raw[func][4]
            total = sum(v[2] for v in callers.values())
            result = defaultdict(float)
            if total <= 0:
                result["other"] = 1.0
            for caller, values in callers.items():
                weight = values[2] / total if total > 0 else 0.0
                for concern, share in shares(caller, depth + 1).items():
                    result[concern] += weight * share
        memo[func] = dict(result)
        return memo[func]

    totals: dict[str, float] = defaultdict(float)
    for func, (_cc, _nc, tottime, _ct, _callers) in raw.items():
        for concern, share in shares(func).items():
            totals[concern] += tottime * share
    return totals


def by_concern_pyinstrument(session: Any) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    stack: list[tuple[Any, str]] = [(session.root_frame(), "other")]
    while stack:
        frame, inherited = stack.pop()
        if frame is None or frame.is_synthetic:
            continue  # "[self]" frames: already in their parent's total_self_time
        concern = concern_of(frame.file_path or "") or inherited
        totals[concern] += frame.total_self_time
        stack.extend((child, concern) for child in frame.children)
    return totals


def print_concerns(totals: dict[str, float], requests: int, out: TextIO) -> None:
    total = sum(totals.values())
    out.write(f"\nself time by concern, us per request ({requests} requests profiled):\n")
    for concern, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        out.write(
            f"  {concern:<52}{seconds / requests * 1e6:>9.1f}{100 * seconds / total:>7.1f} %\n"
        )
    out.write(f"  {'total':<52}{total / requests * 1e6:>9.1f}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.profile_requests", description=__doc__
    )
    parser.add_argument("--config", default="otel_django", choices=sorted(CONFIGURATIONS))
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--tool", choices=("cprofile", "pyinstrument"), default="cprofile")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--save", metavar="PATH", help="also save the cProfile stats there")
    args = parser.parse_args(argv)

    out = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # access-log lines are rendered, not printed
    with tempfile.TemporaryDirectory(prefix="otel-django-profile-") as directory, Sink() as sink:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.endpoint
        app = build_app(CONFIGURATIONS[args.config], prepare_database(directory))
        app.run(500)
        out.write(
            f"{CONFIGURATIONS[args.config].label}: unprofiled "
            f"{app.run(args.requests)[0] / args.requests / 1e3:.1f} us per request\n"
        )
        if args.tool == "pyinstrument":
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.001)
            profiler.start()
            app.run(args.requests)
            session = profiler.stop()
            print_concerns(by_concern_pyinstrument(session), args.requests, out)
            out.write(profiler.output_text(unicode=False, color=False, show_all=False))
        else:
            profile = cProfile.Profile()
            profile.enable()
            app.run(args.requests)
            profile.disable()
            stats = pstats.Stats(profile, stream=out)
            if args.save:
                stats.dump_stats(args.save)
            print_concerns(by_concern_cprofile(stats), args.requests, out)
            out.write("\n")
            stats.sort_stats("tottime").print_stats(args.top)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
