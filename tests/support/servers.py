"""The demo as a real server process: runserver, gunicorn (optionally under the wrapper), and
every other common server (:data:`SERVER_CASES`)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo"
BIN = Path(sys.executable).parent


def demo_env(sqlite_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "DJANGO_", "SENTRY_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="demo.settings",
        DEMO_SQLITE_PATH=str(sqlite_path),
        PYTHONPATH=os.pathsep.join([str(DEMO), str(ROOT)]),
        PYTHONUNBUFFERED="1",
        OTEL_DJANGO_LOG_LEVEL="warning",
    )
    env.update(extra)
    return env


def seeded_database(directory: Path) -> Path:
    """A migrated, seeded SQLite file for the demo (made once per directory)."""
    path = directory / "demo-seeded.sqlite3"
    if not path.exists():
        env = demo_env(path, OTEL_TRACES_EXPORTER="none", OTEL_DJANGO_LOGGING_ENABLED="false")
        for command in (["migrate", "--no-input"], ["seed_demo"]):
            subprocess.run(
                [sys.executable, "manage.py", *command],
                cwd=DEMO,
                env=env,
                check=True,
                capture_output=True,
                timeout=120,
            )
    return path


def copy_database(seeded: Path, directory: Path) -> Path:
    target = directory / "demo.sqlite3"
    shutil.copyfile(seeded, target)
    return target


class Server:
    """A server subprocess with its stdout and stderr kept in files."""

    def __init__(
        self, command: Sequence[str], env: Mapping[str, str], port: int, logs: Path
    ) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        logs.mkdir(parents=True, exist_ok=True)
        self.stdout_path = logs / "stdout.log"
        self.stderr_path = logs / "stderr.log"
        self._stdout = self.stdout_path.open("wb")
        self._stderr = self.stderr_path.open("wb")
        self.process = subprocess.Popen(
            list(command),
            cwd=DEMO,
            env=dict(env),
            stdout=self._stdout,
            stderr=self._stderr,
            start_new_session=True,
        )

    def wait_ready(self, path: str = "/healthz", timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.process.returncode}:\n{self.stderr()}"
                )
            try:
                with urllib.request.urlopen(self.base_url + path, timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # it answered
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.stderr()}")

    def get(
        self, path: str, headers: Mapping[str, str] | None = None, method: str = "GET"
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(
            self.base_url + path, headers=dict(headers or {}), method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._stdout.close()
        self._stderr.close()
        return self.process.returncode

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def wait_for_stdout(self, text: str, timeout: float = 15.0) -> bool:
        """Whether ``text`` appeared on stdout within ``timeout``: a server may write a
        request's line after the response has reached the client."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.stdout() or self.process.poll() is not None:
                break
            time.sleep(0.05)
        return text in self.stdout()

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def runserver(port: int, env: Mapping[str, str], logs: Path, instrument: bool = False) -> Server:
    command = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    if instrument:
        command = [str(BIN / "opentelemetry-instrument"), *command]
    return Server(command, env, port, logs)


def gunicorn(
    port: int,
    env: Mapping[str, str],
    logs: Path,
    workers: int = 4,
    preload: bool = False,
    instrument: bool = False,
    extra: Sequence[str] = (),
) -> Server:
    command = [
        str(BIN / "gunicorn"),
        "demo.wsgi",
        "-b",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "-c",
        "python:otel_django.gunicorn",
        "--graceful-timeout",
        "20",
        "--no-control-socket",
        *extra,
    ]
    if preload:
        command.append("--preload")
    if instrument:
        command = [str(BIN / "opentelemetry-instrument"), *command]
    return Server(command, env, port, logs)


# -- every common server, started as its documentation says (tests/servers/test_real_servers.py)


@dataclasses.dataclass(frozen=True)
class ServerCase:
    """One way to serve the demo: the command line, and what to expect of it.

    ``access_logger``: the server's own access logger, switched on in ``command`` where it is
    off by default. ``keep_access_lines``: run with ``ACCESS_LOG=false``, so that the server's
    access lines are printed (redacted) instead of otel_django's.
    """

    id: str
    command: Callable[[int], list[str]]
    workers: int = 2
    access_logger: str | None = None
    keep_access_lines: bool = False
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    expected_warnings: tuple[str, ...] = ()
    smoke: bool = False


def _gunicorn(app: str, *options: str, hooks: bool = True) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        hook_options = ["-c", "python:otel_django.gunicorn"] if hooks else []
        return [
            str(BIN / "gunicorn"),
            app,
            "-b",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            *hook_options,
            "--access-logfile",
            "-",
            "--no-control-socket",  # gunicorn >= 25: one per server, not one per user
            *options,
        ]

    return command


def _uvicorn(port: int) -> list[str]:
    return [
        str(BIN / "uvicorn"),
        "demo.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
    ]


def _granian(interface: str, app: str, *options: str) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        return [
            str(BIN / "granian"),
            "--interface",
            interface,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
            "--access-log",
            *options,
            app,
        ]

    return command


def _uwsgi(*options: str) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        return [
            str(BIN / "uwsgi"),
            "--http-socket",
            f"127.0.0.1:{port}",
            "--module",
            "demo.wsgi:application",
            "--master",
            "--processes",
            "2",
            "--enable-threads",  # threads for the span exporter and the metrics exchange
            # SIGTERM stops uWSGI 2.0 gracefully (alone it reloads; with --die-on-term it kills
            # the workers at once, and what they have not exported yet is lost).
            "--hook-master-start",
            "unix_signal:15 gracefully_kill_them_all",
            "--disable-logging",  # its request log is C, with raw query strings
            *options,
        ]

    return command


def _runserver(port: int) -> list[str]:
    return [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]


GUNICORN_WSGI = "demo.wsgi"
SERVER_CASES = (
    ServerCase(
        "gunicorn-sync", _gunicorn(GUNICORN_WSGI), access_logger="gunicorn.access", smoke=True
    ),
    ServerCase(
        "gunicorn-sync-preload",
        _gunicorn(GUNICORN_WSGI, "--preload"),
        access_logger="gunicorn.access",
    ),
    ServerCase(
        "gunicorn-sync-no-hooks",
        _gunicorn(GUNICORN_WSGI, hooks=False),
        access_logger="gunicorn.access",
    ),
    ServerCase(
        "gunicorn-sync-preload-no-hooks",
        _gunicorn(GUNICORN_WSGI, "--preload", hooks=False),
        access_logger="gunicorn.access",
    ),
    ServerCase(
        "gunicorn-gthread",
        _gunicorn(GUNICORN_WSGI, "--threads", "4"),
        access_logger="gunicorn.access",
        keep_access_lines=True,
    ),
    ServerCase(
        "gunicorn-gthread-preload-no-hooks",
        _gunicorn(GUNICORN_WSGI, "--threads", "4", "--preload", hooks=False),
        access_logger="gunicorn.access",
    ),
    ServerCase(
        "gunicorn-uvicorn-worker",
        _gunicorn("demo.asgi:application", "-k", "uvicorn_worker.UvicornWorker"),
        access_logger="uvicorn.access",
    ),
    ServerCase("uvicorn-workers", _uvicorn, access_logger="uvicorn.access", smoke=True),
    ServerCase(
        "uvicorn-workers-prefork-true",
        _uvicorn,
        access_logger="uvicorn.access",
        keep_access_lines=True,
        env={"OTEL_DJANGO_PREFORK": "true"},
        expected_warnings=("this process serves requests but was never forked",),
    ),
    ServerCase(
        "granian-wsgi",
        _granian("wsgi", "demo.wsgi:application"),
        access_logger="granian.access",
    ),
    ServerCase(
        "granian-asgi",
        # Its default format has no query string: this one has, as granian's docs show.
        _granian(
            "asgi",
            "demo.asgi:application",
            "--access-log-fmt",
            '%(addr)s - "%(method)s %(path)s?%(query_string)s %(protocol)s" %(status)d',
        ),
        access_logger="granian.access",
        keep_access_lines=True,
    ),
    ServerCase("uwsgi", _uwsgi()),
    ServerCase("uwsgi-lazy-apps", _uwsgi("--lazy-apps")),
    ServerCase("runserver", _runserver, workers=1),
)


def children(pid: int) -> set[int]:
    """The pids whose parent is ``pid`` (read from /proc)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def wait_workers(master: int, expected: int, exclude: set[int] = frozenset()) -> set[int]:  # type: ignore[assignment]
    """The worker pids of a pre-fork master, once at least ``expected`` of them run."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = children(master) - exclude
        if len(pids) >= expected:
            return pids
        time.sleep(0.2)
    raise AssertionError("gunicorn did not start its workers")
