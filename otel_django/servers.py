"""Which server runs this process, and this process's place in it.

Two questions depend on it:

* Is this the master of a pre-fork server, which loads the application and then forks its
  workers? There providers are not created: each worker creates its own after the fork
  (:mod:`otel_django.startup`), so each has its own exporter threads and ``service.instance.id``.
* Is this one of several workers of one server? Then each scrape must add up all the workers'
  metrics (:mod:`otel_django.metrics.multiprocess`), in a directory they share.

What is known, per server (checked against the versions in the README's server table):

=================  ==========================================  ===============================
server             how it is recognised                        master / worker
=================  ==========================================  ===============================
gunicorn           ``sys.argv[0]`` is ``gunicorn``              master with ``--preload``; a
                                                               worker while gunicorn's worker
                                                               code is on the stack
uWSGI              the ``uwsgi`` module, which exists only      ``uwsgi.worker_id() == 0``: the
                   inside uWSGI                                 master (not ``--lazy-apps``)
uvicorn, granian   ``sys.argv[0]`` or the imported module,      a worker when started by
                   and a ``multiprocessing`` parent             ``multiprocessing`` (uvicorn
                                                               spawns, granian forks)
runserver          ``runserver`` in ``sys.argv``                one process
=================  ==========================================  ===============================

Anything else counts as one process, a server of its own. Where that is wrong, the ``PREFORK``
setting says so (``true``: this process forks workers after loading the app; each worker sets
itself up and their metrics are merged), and ``METRICS_MULTIPROCESS_DIR`` merges the metrics
of workers started some other way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import multiprocessing.util
import os
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any, Literal

from .config import Prefork

Role = Literal["master", "worker", "single"]

MASTER: Role = "master"
WORKER: Role = "worker"
SINGLE: Role = "single"

# Servers whose workers multiprocessing starts (a worker imports the application itself).
_MULTIPROCESSING_SERVERS = ("uvicorn", "granian")


@dataclasses.dataclass(frozen=True)
class ServerProcess:
    """This process: which server (``unknown`` if none is recognised) and its role in it.

    ``master``: a pre-fork master that loads the application, then forks workers.
    ``worker``: one of the workers of a server that has (or may have) several.
    ``single``: a process that serves on its own.
    """

    server: str
    role: Role
    # The process whose workers share one metrics directory: the master or supervisor.
    parent_pid: int | None = None


def _program() -> str:
    """``gunicorn`` for ``/venv/bin/gunicorn`` and for ``python -m gunicorn``."""
    argv0 = sys.argv[0] if sys.argv and isinstance(sys.argv[0], str) else ""
    name = os.path.basename(argv0)
    if name in {"__main__.py", "__main__"}:
        name = os.path.basename(os.path.dirname(argv0))
    return name.removesuffix(".exe").lower()


def _uwsgi() -> ModuleType | None:
    """uWSGI's embedded module: importable only in a process uWSGI runs."""
    module = sys.modules.get("uwsgi")
    if module is None:
        try:
            import uwsgi
        except ImportError:
            return None
        module = uwsgi
    # A stray ``uwsgi`` package would not have these.
    return module if hasattr(module, "worker_id") and hasattr(module, "numproc") else None


def _in_gunicorn_worker() -> bool:
    """Whether gunicorn's code for a worker is on the stack: the worker loads the app (no
    ``--preload``), or its ``post_fork`` hook or a fork hook runs in a just-forked worker.

    Checked against gunicorn 23-27: ``Arbiter.spawn_worker`` forks and runs the worker
    (``gunicorn/workers/``, or ``uvicorn_worker``) in the child.
    """
    frame = sys._getframe()
    while frame is not None:
        code = frame.f_code
        filename = code.co_filename.replace("\\", "/")
        if "/gunicorn/workers/" in filename or "/uvicorn_worker/" in filename:
            return True
        if filename.endswith("/gunicorn/arbiter.py") and code.co_name == "spawn_worker":
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _multiprocessing_parent() -> int | None:
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None else None


def detect() -> ServerProcess:
    """What runs this process, from what the process can see of itself (no settings)."""
    uwsgi = _uwsgi()
    if uwsgi is not None:
        if uwsgi.worker_id() == 0:
            return ServerProcess("uwsgi", MASTER)
        master = uwsgi.masterpid() if hasattr(uwsgi, "masterpid") else 0
        return ServerProcess("uwsgi", WORKER, master or os.getppid())
    program = _program()
    if program.startswith("gunicorn"):
        if _in_gunicorn_worker():
            return ServerProcess("gunicorn", WORKER, os.getppid())
        return ServerProcess("gunicorn", MASTER)
    parent = _multiprocessing_parent()
    for server in _MULTIPROCESSING_SERVERS:
        if program == server or server in sys.modules:
            if parent is not None:
                return ServerProcess(server, WORKER, parent)
            return ServerProcess(server, SINGLE)
    if "runserver" in sys.argv[1:2] or "runserver" in sys.argv[1:3]:
        return ServerProcess("runserver", SINGLE)
    return ServerProcess("unknown", SINGLE)


def in_prefork_master(prefork: Prefork) -> bool:
    """Whether providers wait for the fork: ``PREFORK`` if set, else what :func:`detect` says."""
    if prefork is not Prefork.AUTO:
        return prefork is Prefork.TRUE
    return detect().role == MASTER


def has_sibling_workers(multiprocess_dir: str | None, prefork: Prefork) -> bool:
    """Whether this process's metrics must be merged with other workers' when scraped."""
    if multiprocess_dir or prefork is Prefork.TRUE:
        return True
    process = detect()
    if process.server == "uwsgi":
        uwsgi = _uwsgi()
        return uwsgi is not None and int(uwsgi.numproc) > 1
    return process.role in (MASTER, WORKER)


def exchange_parent_pid() -> int:
    """The pid that names the metrics directory of this process's server.

    The workers of one server see the same one: their master or supervisor (a worker started
    by ``multiprocessing`` asks it for its parent, which stays right if the worker is orphaned).
    """
    process = detect()
    if process.parent_pid:
        return process.parent_pid
    return _multiprocessing_parent() or os.getppid()


def misconfiguration() -> str | None:
    """What in the server's own options keeps telemetry from working, if anything."""
    uwsgi = _uwsgi()
    if uwsgi is not None and not getattr(uwsgi, "has_threads", True):
        return (
            "uWSGI runs without --enable-threads: the span exporter's and the metrics "
            "exchange's threads cannot run, so spans wait for the exit and scrapes show one "
            "worker (start uWSGI with --enable-threads)"
        )
    return None


def call_after_fork(callback: Callable[[], None]) -> None:
    """Runs ``callback`` in each child right after a fork of this process.

    ``os.register_at_fork`` hooks do not run in uWSGI's workers (uWSGI forks in C and calls
    them only with ``--py-call-osafterfork``); there its documented ``postfork`` chain
    (``uwsgidecorators``, checked against uWSGI 2.0.28-2.0.31) runs it too. ``callback`` must
    be safe to run twice.
    """
    os.register_at_fork(after_in_child=callback)
    uwsgi = _uwsgi()
    if uwsgi is None:
        return
    try:
        from uwsgidecorators import postfork
    except ImportError:  # a uWSGI build without it: chain the hook by hand
        previous = getattr(uwsgi, "post_fork_hook", None)

        def hook() -> None:
            if callable(previous):
                previous()
            callback()

        setattr(uwsgi, "post_fork_hook", hook)  # noqa: B010 - a module without stubs
    else:
        postfork(callback)


def call_at_worker_exit(callback: Callable[[], None]) -> None:
    """Runs ``callback`` (once) when this server process stops, where ``atexit`` does not.

    * A process that ``multiprocessing`` forked (granian's workers) ends with ``os._exit``
      after its target returns: before Python 3.13 ``atexit`` handlers never run there, only
      multiprocessing's own finalizers. (Spawned processes, uvicorn's workers, end with
      ``sys.exit``; forked ones run ``atexit`` from Python 3.13 on.)
    * uvicorn, after its graceful shutdown on SIGTERM, restores the signal's default action and
      raises the signal again: the process dies without ``atexit`` or finalizers. Before that
      it sends the ASGI ``lifespan.shutdown`` event, after the last request: Django does not
      answer lifespan events, so otel_django does (:func:`_answer_lifespan`).

    Elsewhere ``atexit`` (the SDK's), the SIGTERM handler of :mod:`otel_django.startup` or
    gunicorn's ``worker_exit`` hook does the work.
    """
    lock = threading.Lock()
    done: list[bool] = []

    def once() -> None:
        with lock:
            if not done:
                done.append(True)
                callback()

    if _forked_by_multiprocessing() and sys.version_info < (3, 13):
        multiprocessing.util.Finalize(None, once, exitpriority=100)
    if detect().server in _MULTIPROCESSING_SERVERS:
        _answer_lifespan(once)


def _forked_by_multiprocessing() -> bool:
    """A spawned child has its parent's start method set; a forked one, ``fork`` or none."""
    if multiprocessing.parent_process() is None:
        return False
    return multiprocessing.get_start_method(allow_none=True) in (None, "fork")


def _answer_lifespan(on_shutdown: Callable[[], None]) -> None:
    """Lets Django's ASGI handler answer ``lifespan`` events, running ``on_shutdown`` on
    ``lifespan.shutdown``; every other scope goes to Django as before.

    Django's ``ASGIHandler`` rejects lifespan scopes (checked against Django 5.2-6.1); the
    servers then carry on without them (uvicorn: "ASGI 'lifespan' protocol appears
    unsupported"), and send no shutdown event. ``tests/servers/test_detection.py``
    fails if Django starts answering them itself.
    """
    from django.core.handlers.asgi import ASGIHandler

    original = ASGIHandler.__call__
    if getattr(original, "_otel_django_lifespan", False):
        return

    async def __call__(self: ASGIHandler, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "lifespan":
            return await original(self, scope, receive, send)
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await asyncio.get_running_loop().run_in_executor(None, on_shutdown)
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return

    __call__._otel_django_lifespan = True  # type: ignore[attr-defined]
    ASGIHandler.__call__ = __call__  # type: ignore[method-assign]
