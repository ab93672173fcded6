"""Metrics of all the workers of a pre-fork server (gunicorn), merged when one is scraped.

Each worker keeps its own OTel metrics, as usual: nothing is added to the request path.
Each also listens on a unix socket ``<dir>/<worker>.sock`` in a thread that sleeps in
``accept()``. The worker that answers a scrape asks every other live worker for its current
cumulative snapshot and adds them up, so whichever worker Prometheus reaches, it sees the
totals of the server.

Counters must not go backwards when a worker exits, so every snapshot a worker hands out is
first saved to ``<dir>/<worker>.json``, and a worker that exits saves its final one. When a
scrape finds a worker gone (its socket refuses connections or was removed), that worker's last
snapshot is added to ``<dir>/archive.json`` (counters and histograms only) and counted from
then on. A worker killed with SIGKILL loses what it counted after its last answer: that is
the only staleness. A worker that does not answer in time is counted with its last answer.

One scrape at a time runs the merge, under ``flock`` on ``<dir>/.lock``; exiting workers take
the same lock, so no snapshot is counted twice or missed.

Past the cardinality limit, which label sets keep a series of their own is decided once for
the server, in ``<dir>/admitted``: a label set first seen by a merge while its metric has
room is admitted for good (also into the archive), any other is added to the overflow
series, whichever worker answers and in whatever order snapshots come. The record only grows
and is saved before the answer leaves, so no series shown once vanishes or decreases. What a
worker folded into its own overflow series (its own limit) stays in overflow.

The directory is private (mode 0700, checked) and named after the master process, so a
restarted server starts from zero.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import selectors
import shutil
import socket
import stat
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from .. import servers
from ..config import Prefork
from .exposition import (
    ALL,
    LIVE,
    LOCAL,
    Family,
    Snapshot,
    from_json,
    merge_into,
    settle,
    to_json,
)

logger = logging.getLogger("otel_django.metrics")

ARCHIVE = "archive.json"
ADMITTED = "admitted"  # not *.json: that is a worker's snapshot
# Within Prometheus' default scrape timeout (10 s) with room to spare: every peer is asked at
# once and given PEER_TIMEOUT_S in all; another merge is waited for at most GATHER_TIMEOUT_S.
PEER_TIMEOUT_S = 2.0
GATHER_TIMEOUT_S = 5.0
MAX_SNAPSHOT_BYTES = 256 * 1024 * 1024
_SOCKET_PATH_MAX = 100

_peer = threading.local()


def answering_peer() -> bool:
    """True while this thread collects a snapshot for another worker's scrape (or its last,
    on exit).

    Expensive gauges whose value is the same in every worker (unapplied migrations) skip
    their work then: the scraping worker computes them once, and exchanged snapshots do not
    carry them anyway.
    """
    return bool(getattr(_peer, "active", False))


def _start_time(pid: int) -> str:
    """Field 22 of /proc/<pid>/stat, so that a reused pid makes a new directory; "0" if unknown."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "0"


def _prefix(parent: str | None) -> tuple[Path, str]:
    if parent:
        return Path(parent), "otel_django-"
    return Path(tempfile.gettempdir()), f"otel_django-{os.getuid()}-"


def default_directory(parent: str | None) -> Path:
    """The directory shared by the workers of this process's master (or supervisor: the
    process that spawned uvicorn's or granian's workers)."""
    base, prefix = _prefix(parent)
    ppid = servers.exchange_parent_pid()
    return base / f"{prefix}{ppid}-{_start_time(ppid)}"


def remove_stale_directories(parent: str | None) -> None:
    """Removes the directories of masters that are gone (best effort, ours only)."""
    base, prefix = _prefix(parent)
    try:
        entries = list(base.glob(prefix + "*"))
    except OSError:
        return
    for path in entries:
        pid_text, _, start = path.name[len(prefix) :].partition("-")
        if not pid_text.isdigit() or not start.isdigit():
            continue
        pid = int(pid_text)
        with contextlib.suppress(OSError):
            if os.lstat(path).st_uid != os.getuid() or not stat.S_ISDIR(os.lstat(path).st_mode):
                continue
            try:
                os.kill(pid, 0)
                alive = start == "0" or _start_time(pid) == start
            except ProcessLookupError:
                alive = False
            except PermissionError:
                alive = True
            if not alive:
                shutil.rmtree(path, ignore_errors=True)


def _prepare_directory(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise PermissionError(
            f"{path} must be a directory of this user with mode 0700 (it holds metric snapshots)"
        )


class Exchange:
    """This worker's side of the exchange: answers peers, and merges them when scraped."""

    def __init__(
        self,
        directory: Path,
        collect: Callable[[], Snapshot],
        limit: int,
        peer_timeout_s: float = PEER_TIMEOUT_S,
    ) -> None:
        self.directory = directory
        self.peer_timeout_s = peer_timeout_s
        self.worker_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._collect = collect
        self._limit = limit
        self._pid = os.getpid()
        self._server: socket.socket | None = None
        self._dir_fd: int | None = None
        self._closed = False
        self._answer_lock = threading.Lock()
        # The admitted record as last read or written: (inode, mtime, size), record.
        self._admitted: tuple[tuple[int, int, int], dict[str, set[str]]] | None = None

    @property
    def socket_path(self) -> Path:
        return self.directory / f"{self.worker_id}.sock"

    @property
    def snapshot_path(self) -> Path:
        return self.directory / f"{self.worker_id}.json"

    def _address(self, name: str) -> str:
        """The path to bind or connect ``name`` in the directory, short enough for a socket."""
        path = str(self.directory / name)
        if len(path.encode()) <= _SOCKET_PATH_MAX:
            return path
        if self._dir_fd is not None and os.path.isdir(f"/proc/self/fd/{self._dir_fd}"):
            return f"/proc/self/fd/{self._dir_fd}/{name}"  # Linux: same file, short path
        raise OSError(f"{path} is too long for a unix socket: choose a shorter directory")

    def start(self) -> None:
        _prepare_directory(self.directory)
        self._dir_fd = os.open(self.directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            server.bind(self._address(self.socket_path.name))
        except OSError:
            server.close()
            raise
        server.listen(16)
        self._server = server
        threading.Thread(
            target=self._serve, name="otel_django-metrics-exchange", daemon=True
        ).start()

    def _owned(self) -> bool:
        return os.getpid() == self._pid and self._server is not None

    # -- answering other workers

    def _serve(self) -> None:
        server = self._server
        while server is not None and not self._closed:
            try:
                conn, _ = server.accept()
            except OSError:
                if self._closed:
                    return
                time.sleep(0.05)
                continue
            with conn:
                try:
                    conn.settimeout(self.peer_timeout_s)
                    if conn.recv(1) != b"?":
                        continue
                    data = self._answer()
                    if data is not None:
                        conn.sendall(data)
                except Exception:  # a peer that went away must not stop this thread
                    logger.debug("metrics exchange: answering a peer failed", exc_info=True)

    def _answer(self) -> bytes | None:
        with self._answer_lock:  # answers are saved in the order they are given
            if self._closed:
                return self._read(self.snapshot_path)
            _peer.active = True
            try:
                data = to_json(self._collect(), (ALL, LIVE))
            finally:
                _peer.active = False
            # Saved before it is sent: whatever a scrape has seen stays counted.
            return data if self._save(data) else None

    def _save(self, data: bytes) -> bool:
        tmp = self.directory / f".{self.worker_id}.tmp"
        try:
            tmp.write_bytes(data)
            os.replace(tmp, self.snapshot_path)
        except OSError:
            logger.warning("metrics exchange: cannot save %s", self.snapshot_path, exc_info=True)
            return False
        return True

    @staticmethod
    def _read(path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except OSError:
            return None

    # -- scraping

    @contextlib.contextmanager
    def _locked(self, timeout_s: float) -> Iterator[bool]:
        deadline = time.monotonic() + timeout_s
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        yield False
                        return
                    time.sleep(0.01)
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def gather(self, local: Snapshot) -> Snapshot:
        """``local`` plus every other worker's snapshot plus exited workers' totals.

        Raises ``TimeoutError`` when another scrape holds the merge for too long.
        """
        if not self._owned():
            return local
        with self._locked(GATHER_TIMEOUT_S) as locked:
            if not locked:
                raise TimeoutError("another scrape of this server is still merging")
            admitted = self._load_admitted()
            admitted_before = sum(map(len, admitted.values()))
            merged: dict[str, Family] = {}
            merge_into(
                merged, local.families, (ALL, LIVE, LOCAL), self._limit, admitted, exact=True
            )
            with self._answer_lock:
                self._save(to_json(local, (ALL, LIVE)))
            resources = [local.resource]
            counted = {self.worker_id}
            peers = [p for p in self.directory.glob("*.sock") if p.stem != self.worker_id]
            answers = self._ask_all(peers)
            for path in sorted(peers):
                worker = path.stem
                raw = answers[path]
                if raw is None:  # gone: its last snapshot goes to the archive below
                    with contextlib.suppress(OSError):
                        path.unlink()
                    continue
                counted.add(worker)
                if raw == b"":  # alive but slow: its last answer
                    raw = self._read(self.directory / f"{worker}.json") or b""
                    if not raw:
                        continue
                try:
                    snapshot = from_json(raw)
                except ValueError:
                    logger.warning("metrics exchange: worker %s sent a malformed snapshot", worker)
                    continue
                merge_into(
                    merged, snapshot.families, (ALL, LIVE), self._limit, admitted, exact=True
                )
                resources.append(snapshot.resource)
            archive = self._update_archive(counted, admitted)
            merge_into(merged, archive.families, (ALL,), self._limit, admitted, exact=True)
            settle(merged)
            if sum(map(len, admitted.values())) != admitted_before:
                self._save_admitted(admitted)
        common = {
            k: v for k, v in resources[0].items() if all(r.get(k) == v for r in resources[1:])
        }
        return Snapshot(merged, common)

    def _ask_all(self, peers: list[Path]) -> dict[Path, bytes | None]:
        """Every peer's snapshot, all asked at once and given ``peer_timeout_s`` in all:
        ``None`` for a peer that is gone, ``b""`` for one that did not answer in time."""
        deadline = time.monotonic() + self.peer_timeout_s
        answers: dict[Path, bytes | None] = {}
        selector = selectors.DefaultSelector()
        try:
            for path in peers:
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                conn.setblocking(False)
                try:
                    conn.connect(self._address(path.name))
                    conn.send(b"?")
                except (ConnectionRefusedError, FileNotFoundError):
                    conn.close()
                    answers[path] = None
                    continue
                except OSError:  # its backlog is full: busy
                    conn.close()
                    answers[path] = b""
                    continue
                selector.register(conn, selectors.EVENT_READ, (conn, path, []))
            while selector.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                for key, _events in selector.select(remaining):
                    conn, path, chunks = key.data
                    try:
                        chunk = conn.recv(1 << 20)
                    except BlockingIOError:
                        continue
                    except OSError:
                        chunk = None
                    if chunk:
                        chunks.append(chunk)
                        if sum(map(len, chunks)) <= MAX_SNAPSHOT_BYTES:
                            continue
                        answers[path] = b""
                    else:
                        answers[path] = b"".join(chunks) if chunk is not None else b""
                    selector.unregister(conn)
                    conn.close()
        finally:
            for key in list(selector.get_map().values()):
                conn, path, _chunks = key.data
                answers.setdefault(path, b"")  # no answer in time
                selector.unregister(conn)
                conn.close()
            selector.close()
        return answers

    def _load_admitted(self) -> dict[str, set[str]]:
        """The server's admitted label sets per metric; read again only when the file changed."""
        path = self.directory / ADMITTED
        try:
            info = os.stat(path)
        except FileNotFoundError:
            self._admitted = None
            return {}
        key = (info.st_ino, info.st_mtime_ns, info.st_size)
        if self._admitted is not None and self._admitted[0] == key:
            return self._admitted[1]
        try:
            document = json.loads(path.read_bytes())
            families = document["families"]
            if document.get("v") != 1 or not isinstance(families, dict):
                raise ValueError("not an admitted record")
            admitted = {}
            for name, labels in families.items():
                if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
                    raise ValueError("not an admitted record")
                admitted[name] = set(labels)
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            logger.error(
                "metrics exchange: %s is unreadable; series past the limit are admitted anew",
                path,
            )
            return {}
        self._admitted = (key, admitted)
        return admitted

    def _save_admitted(self, admitted: dict[str, set[str]]) -> None:
        path = self.directory / ADMITTED
        tmp = self.directory / ".admitted.tmp"
        document = {"v": 1, "families": {k: sorted(v) for k, v in admitted.items() if v}}
        try:
            tmp.write_bytes(json.dumps(document, separators=(",", ":")).encode())
            os.replace(tmp, path)
            info = os.stat(path)
        except OSError:
            logger.warning("metrics exchange: cannot save %s", path, exc_info=True)
            return
        self._admitted = ((info.st_ino, info.st_mtime_ns, info.st_size), admitted)

    def _update_archive(self, counted: set[str], admitted: dict[str, set[str]]) -> Snapshot:
        """Adds exited workers' last snapshots to the archive; returns the archive."""
        archive_path = self.directory / ARCHIVE
        archive = Snapshot({})
        merged_ids: set[str] = set()
        raw = self._read(archive_path)
        if raw:
            try:
                archive = from_json(raw)
                merged_ids = set(_merged_ids(raw))
            except ValueError:
                logger.error(
                    "metrics exchange: %s is corrupt; exited workers' totals are lost", archive_path
                )
        exited = [
            path
            for path in self.directory.glob("*.json")
            if path.name != ARCHIVE
            and path.stem not in counted
            and not (self.directory / f"{path.stem}.sock").exists()
        ]
        if not exited:
            return archive
        for path in exited:
            if path.stem in merged_ids:
                continue
            data = self._read(path)
            try:
                snapshot = from_json(data or b"")
            except ValueError:
                logger.warning("metrics exchange: %s is malformed; left out", path)
                continue
            merge_into(
                archive.families, snapshot.families, (ALL,), self._limit, admitted, exact=True
            )
            merged_ids.add(path.stem)
        settle(archive.families, compact=True)
        tmp = self.directory / ".archive.tmp"
        try:
            tmp.write_bytes(
                to_json(
                    archive,
                    (ALL,),
                    merged=sorted(m for m in merged_ids if (self.directory / f"{m}.json").exists()),
                )
            )
            os.replace(tmp, archive_path)
        except OSError:
            logger.warning("metrics exchange: cannot save %s", archive_path, exc_info=True)
            return archive
        for path in exited:
            with contextlib.suppress(OSError):
                path.unlink()
        return archive

    # -- exit

    def close(self) -> None:
        """Saves this worker's final snapshot and stops answering. Idempotent."""
        if not self._owned() or self._closed:
            return
        with self._locked(GATHER_TIMEOUT_S):
            with self._answer_lock:
                _peer.active = True  # as for a peer: no expensive gauges, they are not saved
                try:
                    final = self._collect()
                    self._save(to_json(final, (ALL, LIVE)))
                except Exception:
                    logger.warning("metrics exchange: final snapshot failed", exc_info=True)
                finally:
                    _peer.active = False
                self._closed = True
            server, self._server = self._server, None
            if server is not None:
                with contextlib.suppress(OSError):
                    server.shutdown(socket.SHUT_RDWR)
                server.close()
            with contextlib.suppress(OSError):
                self.socket_path.unlink()
            if self._dir_fd is not None:
                os.close(self._dir_fd)
                self._dir_fd = None


def _merged_ids(raw: bytes) -> list[str]:
    ids = json.loads(raw).get("merged", [])
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValueError("malformed archive")
    return ids


def wanted(multiprocess_dir: str | None, prefork: Prefork) -> bool:
    """Whether this process is one worker of several: a directory is set, ``PREFORK=true``, or
    a server with several workers runs it (:func:`otel_django.servers.has_sibling_workers`)."""
    return servers.has_sibling_workers(multiprocess_dir, prefork)
