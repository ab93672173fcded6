"""Exact totals with real gunicorn workers, whichever worker answers the scrape.

Proves, with ``--workers 4`` without and with ``--preload``: after exactly N requests spread
over the workers, every scrape reports ``sum(http_server_request_duration_seconds_count) ==
N``; the totals stay exact and never go backwards when a worker is stopped (SIGTERM, gunicorn
starts another) or killed (SIGKILL right after a scrape); new requests then add up exactly.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import tempfile
import time
from pathlib import Path

import pytest

from otel_django.metrics.exposition import from_json
from tests.support import servers
from tests.support.auth import authorization
from tests.support.metrics import total
from tests.support.servers import wait_workers
from tests.support.services import free_port

pytestmark = pytest.mark.slow

PASSWORD = "gunicorn-test-password"
AUTH = authorization(PASSWORD)
COUNT = "http_server_request_duration_seconds_count"
PATHS = ("/products/1/", "/cached/", "/no-such-page/", "/products/")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return servers.seeded_database(tmp_path_factory.mktemp("gunicorn-db"))


def send(app: servers.Server, n: int) -> None:
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda i: app.get(PATHS[i % len(PATHS)])[0], range(n)))
    assert len(statuses) == n and set(statuses) <= {200, 404}


def scraped_total(app: servers.Server) -> float:
    status, _, body = app.get("/metrics", headers=AUTH)
    assert status == 200, body[:200]
    return total(body.decode(), COUNT)


def worker_counts(directory: Path) -> list[float]:
    counts = []
    for path in directory.glob("*.json"):
        if path.name == "archive.json":
            continue
        family = from_json(path.read_bytes()).families.get("http_server_request_duration_seconds")
        counts.append(sum(p[0] for p in family.points.values()) if family else 0)
    return counts


@pytest.mark.parametrize("preload", [False, True], ids=["no-preload", "preload"])
def test_every_scrape_reports_all_workers(preload: bool, seeded: Path, tmp_path: Path) -> None:
    database = servers.copy_database(seeded, tmp_path)
    env = servers.demo_env(
        database,
        OTEL_TRACES_EXPORTER="none",
        OTEL_DJANGO_METRICS_PASSWORD=PASSWORD,
        OTEL_DJANGO_ACCESS_LOG="false",
    )
    if not preload:  # with --preload, the default directory (in the temp dir) is used
        env["OTEL_DJANGO_METRICS_MULTIPROCESS_DIR"] = str(tmp_path / "exchange")
    app = servers.gunicorn(free_port(), env, tmp_path / "logs", workers=4, preload=preload)
    try:
        app.wait_ready("/healthz", timeout=60)
        master = app.process.pid
        parent = tmp_path / "exchange" if not preload else Path(tempfile.gettempdir())
        exchange_dir = next(parent.glob(f"otel_django*-{master}-*"))
        workers = wait_workers(master, 4)
        expected = 160
        send(app, expected)
        seen = [scraped_total(app) for _ in range(12)]
        assert seen == [expected] * 12, seen
        assert sum(1 for c in worker_counts(exchange_dir) if c) >= 2  # really spread

        # A worker stopped cleanly: gunicorn starts another, nothing is lost.
        stopped = sorted(workers)[0]
        os.kill(stopped, signal.SIGTERM)
        workers = wait_workers(master, 4, exclude={stopped})
        time.sleep(0.5)
        seen = [scraped_total(app) for _ in range(6)]
        assert seen == [expected] * 6, seen

        send(app, 40)
        expected += 40
        seen = [scraped_total(app) for _ in range(6)]
        assert seen == [expected] * 6, seen

        # A worker killed right after a scrape: what it had answered stays counted.
        killed = sorted(workers)[-1]
        os.kill(killed, signal.SIGKILL)
        wait_workers(master, 4, exclude={killed})
        seen = [scraped_total(app) for _ in range(6)]
        assert seen == [expected] * 6, seen
        send(app, 20)
        assert scraped_total(app) == expected + 20
    finally:
        app.stop()
    assert "Traceback" not in app.stderr(), app.stderr()[-3000:]
