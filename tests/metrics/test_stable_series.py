"""Past the cardinality limit with several gunicorn workers, every scrape shows the same series.

Which attribute sets keep a series of their own is decided once per server (the exchange's
admitted set), not by whichever worker answers. Proves, with 4 workers, a limit of 10 series
per metric and ~90 attribute sets of the HTTP histograms (methods x routes x statuses, none
from user input) spread over the workers: over 30 idle scrapes, and again after a worker is
stopped and replaced and more traffic came in, no counter or histogram series vanishes or
decreases, none appears that was not there (while idle), every metric holds at most 10
series with the overflow series among them, and the request total stays exact.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import os
import random
import signal
import urllib.request
from pathlib import Path

import pytest

from tests.support import servers
from tests.support.auth import authorization
from tests.support.metrics import samples
from tests.support.servers import wait_workers
from tests.support.services import free_port

pytestmark = pytest.mark.slow

PASSWORD = "gunicorn-test-password"
AUTH = authorization(PASSWORD)

LIMIT = 10
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "FOO")
PATHS = ("/products/", "/products/1/", "/products/999999/", "/no-such-page/", "/cached/",
         "/n-plus-one/", "/boom/", "/sqlalchemy/", "/async/")  # fmt: skip
COUNT = "http_server_request_duration_seconds_count"


def request(app: servers.Server, method: str, path: str) -> int:
    req = urllib.request.Request(app.base_url + path, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def send(app: servers.Server, n: int, seed: int) -> None:
    rng = random.Random(seed)
    plan = [(rng.choice(METHODS), rng.choice(PATHS)) for _ in range(n)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda mp: request(app, *mp), plan))
    assert len(statuses) == n and set(statuses) <= {200, 404, 405, 500}, set(statuses)


Series = dict[tuple[str, str], float]


def cumulative_series(app: servers.Server) -> Series:
    """Every counter and histogram sample of one scrape: (name, labels) -> value."""
    status, _, body = app.get("/metrics", headers=AUTH)
    assert status == 200, body[:200]
    text = body.decode()
    kinds: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            kinds[name] = kind
    found: Series = {}
    for name, labels, value in samples(text):
        base = name.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")
        kind = kinds.get(base) or kinds.get(name)
        if kind in ("counter", "histogram"):
            found[(name, ",".join(f"{k}={v}" for k, v in sorted(labels.items())))] = value
    return found


def check_stable(scrapes: list[Series], idle: bool) -> None:
    for earlier, later in itertools.pairwise(scrapes):
        vanished = earlier.keys() - later.keys()
        assert not vanished, f"{len(vanished)} series vanished, e.g. {sorted(vanished)[:3]}"
        decreased = [k for k in earlier if later[k] < earlier[k]]
        assert not decreased, f"{len(decreased)} series decreased, e.g. {decreased[:3]}"
        if idle:
            assert later.keys() == earlier.keys()


def series_per_metric(scrape: Series) -> dict[str, set[str]]:
    metrics: dict[str, set[str]] = {}
    for name, labels in scrape:
        if name.endswith("_count") or name.endswith("_total"):
            metrics.setdefault(name, set()).add(labels)
    return metrics


def test_series_past_the_limit_stay_the_same_whichever_worker_answers(
    seeded: Path, tmp_path: Path
) -> None:
    database = servers.copy_database(seeded, tmp_path)
    env = servers.demo_env(
        database,
        OTEL_TRACES_EXPORTER="none",
        OTEL_DJANGO_METRICS_PASSWORD=PASSWORD,
        OTEL_DJANGO_ACCESS_LOG="false",
        OTEL_DJANGO_METRICS_CARDINALITY_LIMIT=str(LIMIT),
        OTEL_DJANGO_METRICS_MULTIPROCESS_DIR=str(tmp_path / "exchange"),
    )
    app = servers.gunicorn(free_port(), env, tmp_path / "logs", workers=4)
    try:
        app.wait_ready("/healthz", timeout=60)
        workers = wait_workers(app.process.pid, 4)
        send(app, 400, seed=1)
        scrapes = [cumulative_series(app) for _ in range(30)]
        check_stable(scrapes, idle=True)
        last = scrapes[-1]
        assert sum(v for (name, _), v in last.items() if name == COUNT) == 400
        for metric, labels in series_per_metric(last).items():
            assert len(labels) <= LIMIT, (metric, len(labels))
        http = series_per_metric(last)[COUNT]
        assert len(http) == LIMIT and "otel_metric_overflow=true" in http

        # A worker replaced, more traffic: nothing seen before vanishes or decreases.
        os.kill(sorted(workers)[0], signal.SIGTERM)
        wait_workers(app.process.pid, 4, exclude={sorted(workers)[0]})
        send(app, 200, seed=2)
        scrapes += [cumulative_series(app) for _ in range(10)]
        check_stable(scrapes, idle=False)
        check_stable(scrapes[-10:], idle=True)
        assert sum(v for (name, _), v in scrapes[-1].items() if name == COUNT) == 600
        assert series_per_metric(scrapes[-1])[COUNT] == http
    finally:
        app.stop()
    assert "Traceback" not in app.stderr(), app.stderr()[-3000:]
