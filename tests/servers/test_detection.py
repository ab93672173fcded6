"""otel_django.servers: which server runs a process, and the hooks it offers.

The real servers are in test_real_servers.py; here each rule on its own: gunicorn's master and
worker (with and without --preload, and in a fork hook), uWSGI's master and worker, uvicorn's
and granian's workers by their multiprocessing parent, runserver; the settings that override
detection; one metrics directory for the spawned workers of one parent; the ASGI lifespan
events Django rejects and otel_django answers.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from django.core.handlers.asgi import ASGIHandler

from otel_django import servers
from otel_django.config import Prefork
from otel_django.metrics import multiprocess


def detect_from(filename: str, function: str = "load") -> servers.ServerProcess:
    """``servers.detect()`` called from code that claims to live in ``filename``."""
    namespace: dict[str, Any] = {"servers": servers}
    source = f"def {function}():\n    return servers.detect()\nresult = {function}()\n"
    exec(compile(source, filename, "exec"), namespace)
    return namespace["result"]  # type: ignore[no-any-return]


@pytest.fixture
def argv(monkeypatch: pytest.MonkeyPatch) -> Any:
    def set_argv(*args: str) -> None:
        monkeypatch.setattr(sys, "argv", list(args))

    return set_argv


def test_a_test_run_is_one_process() -> None:
    assert servers.detect().role == servers.SINGLE
    assert not servers.in_prefork_master(Prefork.AUTO)
    assert not servers.has_sibling_workers(None, Prefork.AUTO)


def test_gunicorn_master_and_worker(argv: Any) -> None:
    argv("/venv/bin/gunicorn", "mysite.wsgi", "--preload")
    assert servers.detect().role == servers.MASTER  # loading the app with --preload
    assert servers.in_prefork_master(Prefork.AUTO)
    worker = detect_from("/venv/lib/gunicorn/workers/sync.py")
    assert worker == servers.ServerProcess("gunicorn", servers.WORKER, os.getppid())
    # A fork hook or post_fork in the child runs inside Arbiter.spawn_worker.
    assert detect_from("/venv/lib/gunicorn/arbiter.py", "spawn_worker").role == servers.WORKER
    assert detect_from("/venv/lib/uvicorn_worker/_workers.py").role == servers.WORKER
    assert servers.has_sibling_workers(None, Prefork.AUTO)
    argv("/venv/lib/python3.13/site-packages/gunicorn/__main__.py", "mysite.wsgi")
    assert servers.detect().server == "gunicorn"


def test_uwsgi_master_and_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    # The module uWSGI embeds: only its attributes matter here (real uWSGI: test_real_servers.py).
    uwsgi = types.ModuleType("uwsgi")
    uwsgi.numproc = 4  # type: ignore[attr-defined]
    uwsgi.masterpid = lambda: 4242  # type: ignore[attr-defined]
    uwsgi.worker_id = lambda: 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "uwsgi", uwsgi)
    assert servers.detect() == servers.ServerProcess("uwsgi", servers.MASTER)
    assert servers.in_prefork_master(Prefork.AUTO)
    uwsgi.worker_id = lambda: 2  # type: ignore[attr-defined]
    assert servers.detect() == servers.ServerProcess("uwsgi", servers.WORKER, 4242)
    assert servers.exchange_parent_pid() == 4242
    assert servers.has_sibling_workers(None, Prefork.AUTO)
    uwsgi.numproc = 1  # type: ignore[attr-defined]
    assert not servers.has_sibling_workers(None, Prefork.AUTO)
    uwsgi.has_threads = 1  # type: ignore[attr-defined]
    assert servers.misconfiguration() is None
    uwsgi.has_threads = 0  # type: ignore[attr-defined]
    assert "--enable-threads" in (servers.misconfiguration() or "")


@pytest.mark.parametrize("program", ["uvicorn", "granian"])
def test_multiprocessing_workers(program: str, argv: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    argv(f"/venv/bin/{program}", "mysite.asgi:application", "--workers", "2")
    assert servers.detect() == servers.ServerProcess(program, servers.SINGLE)
    assert not servers.has_sibling_workers(None, Prefork.AUTO)  # no --workers: one process
    parent = types.SimpleNamespace(pid=31337)
    monkeypatch.setattr(multiprocessing, "parent_process", lambda: parent)
    assert servers.detect() == servers.ServerProcess(program, servers.WORKER, 31337)
    assert servers.has_sibling_workers(None, Prefork.AUTO)
    assert not servers.in_prefork_master(Prefork.AUTO)  # each worker imports the app itself
    assert servers.exchange_parent_pid() == 31337


def test_runserver(argv: Any) -> None:
    argv("manage.py", "runserver", "--noreload")
    assert servers.detect() == servers.ServerProcess("runserver", servers.SINGLE)


def test_settings_override_detection() -> None:
    assert servers.in_prefork_master(Prefork.TRUE) and not servers.in_prefork_master(Prefork.FALSE)
    assert servers.has_sibling_workers(None, Prefork.TRUE)
    assert servers.has_sibling_workers("/some/dir", Prefork.AUTO)
    assert multiprocess.wanted("/some/dir", Prefork.FALSE)  # PREFORK=false never turns merging off


def _report_directory(queue: Any) -> None:
    queue.put((os.getpid(), str(multiprocess.default_directory(None))))


def test_spawned_workers_of_one_parent_share_one_directory() -> None:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_report_directory, args=(queue,)) for _ in range(2)]
    for worker in workers:
        worker.start()
    reports = [queue.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(60)
    assert len({pid for pid, _ in reports}) == 2
    (directory,) = {path for _, path in reports}
    assert Path(directory).name.startswith(f"otel_django-{os.getuid()}-{os.getpid()}-")


async def _lifespan(app: Any, scope_type: str = "lifespan") -> list[str]:
    incoming = asyncio.Queue[dict[str, str]]()
    for message in ("lifespan.startup", "lifespan.shutdown"):
        incoming.put_nowait({"type": message})
    sent: list[str] = []

    async def send(message: dict[str, str]) -> None:
        sent.append(message["type"])

    scope: dict[str, Any] = {"type": scope_type}
    if scope_type != "lifespan":  # a connection's scope as servers send it (Sentry reads it)
        scope.update(headers=[], path="/", query_string=b"", client=("127.0.0.1", 1))
    await app(scope, incoming.get, send)
    return sent


def test_lifespan_events_are_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    original = ASGIHandler.__call__
    monkeypatch.setattr(ASGIHandler, "__call__", original)  # restored after the test
    handler = ASGIHandler()
    if not getattr(original, "_otel_django_lifespan", False):
        # Django itself rejects them (5.2-6.1): when this fails, Django answers them itself
        # and otel_django's answer must give way to Django's.
        with pytest.raises(ValueError, match="Django can only handle ASGI/HTTP"):
            asyncio.run(_lifespan(handler))
    shut_down: list[bool] = []
    servers._answer_lifespan(lambda: shut_down.append(True))
    assert asyncio.run(_lifespan(handler)) == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert shut_down == [True]
    with pytest.raises(ValueError, match="Django can only handle ASGI/HTTP"):
        asyncio.run(_lifespan(handler, "websocket"))  # everything else still goes to Django
