"""Boot cost: what otel_django adds to a worker's boot and to ``manage.py check``, in CPU.

Each candidate is a fresh interpreter, run interleaved with the others (A B C ... A B C), and
measured by the CPU time (user + system) the child used, from ``getrusage(RUSAGE_CHILDREN)``:

* ``python``: an interpreter that does nothing (``python -c pass``);
* ``floor``: importing what otel_django cannot do without — the SDK's trace and metrics
  packages, the OTLP/HTTP span exporter (built, since it loads its HTTP transport then) and
  structlog;
* ``bare app`` / ``otel_django app``: a worker's boot, ``from demo.wsgi import application``
  (``django.setup()`` and the WSGI handler with its middleware), of the demo without and
  with ``"otel_django"`` in ``INSTALLED_APPS``;
* ``bare check`` / ``otel_django check``: ``manage.py check`` of the same two.

Target (issue 13): what otel_django adds to a worker's boot, ``otel_django app - bare app``,
is at most 1.3 times what the floor adds to an empty interpreter, ``floor - python``; both
differences are taken per round, so they come from the same interleaved runs.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from benchmarks.harness import Comparison, Target, figure

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "demo"

# The OTLP/HTTP exporter loads its transport (requests, urllib3) when it is built: built here.
FLOOR_IMPORTS = (
    "import opentelemetry.sdk.trace, opentelemetry.sdk.trace.export, opentelemetry.sdk.metrics, "
    "structlog; from opentelemetry.exporter.otlp.proto.http.trace_exporter import "
    "OTLPSpanExporter; OTLPSpanExporter()"
)
BOOT = "from demo.wsgi import application"


def _environ(db: Path, with_otel: bool) -> dict[str, str]:
    prefixes = ("OTEL_", "DJANGO_", "SENTRY_", "PROMETHEUS_", "DEMO_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    # Bytecode is cached, as in an installed package (the warm-up rounds write it).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        DJANGO_SETTINGS_MODULE="demo.settings",
        DEMO_SQLITE_PATH=str(db),
        PYTHONPATH=os.pathsep.join([str(DEMO), str(REPO)]),
        DEMO_WITHOUT_OTEL_APP="" if with_otel else "1",
        OTEL_DJANGO_LOG_LEVEL="warning",
    )
    return env


def child_cpu_us(command: Sequence[str], env: Mapping[str, str]) -> float:
    """CPU time (user + system) of one child process, in microseconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        list(command),
        cwd=DEMO,
        env=dict(env),
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=300,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used * 1e6


def run(quick: bool) -> list[Comparison]:
    rounds, warmup = (3, 1) if quick else (15, 2)
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="otel-django-boot-") as directory:
        db = Path(directory) / "boot.sqlite3"
        bare, otel = _environ(db, False), _environ(db, True)
        candidates: dict[str, tuple[list[str], dict[str, str]]] = {
            "python": ([python, "-c", "pass"], bare),
            "floor": ([python, "-c", FLOOR_IMPORTS], bare),
            "bare app": ([python, "-c", BOOT], bare),
            "otel_django app": ([python, "-c", BOOT], otel),
            "bare check": ([python, "manage.py", "check"], bare),
            "otel_django check": ([python, "manage.py", "check"], otel),
        }
        samples: dict[str, list[float]] = {name: [] for name in candidates}
        for index in range(warmup + rounds):
            for name, (command, env) in candidates.items():
                used = child_cpu_us(command, env)
                if index >= warmup:
                    samples[name].append(used)
    added = {
        "floor - python": [f - p for f, p in zip(samples["floor"], samples["python"], strict=True)],
        "otel_django app - bare app": [
            o - b for o, b in zip(samples["otel_django app"], samples["bare app"], strict=True)
        ],
        "otel_django check - bare check": [
            o - b for o, b in zip(samples["otel_django check"], samples["bare check"], strict=True)
        ],
    }
    notes = (
        "CPU time of each child process (getrusage), interleaved, bytecode cached. floor: "
        + FLOOR_IMPORTS
        + f". Worker boot: python -c '{BOOT}' of the demo; check: manage.py check."
    )
    boot = Comparison(
        "Boot CPU per process",
        "process",
        {name: figure(values) for name, values in samples.items()},
        baseline="python",
        notes=notes,
    )
    increments = Comparison(
        "Boot CPU otel_django adds, against the floor",
        "process",
        {name: figure(values) for name, values in added.items()},
        notes="Per-round differences of the runs above.",
        targets=(
            Target(
                "what otel_django adds to a worker's boot <= 1.3x the floor",
                "otel_django app - bare app",
                "floor - python",
                1.3,
                "median",
            ),
            Target(
                "what otel_django adds to manage.py check <= 1.3x the floor",
                "otel_django check - bare check",
                "floor - python",
                1.3,
                "median",
            ),
        ),
    )
    return [boot, increments]
