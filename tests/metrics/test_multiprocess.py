"""The exchange of snapshots between workers, in one process (the gunicorn tests use real ones).

Proves: a scrape adds up every live worker's snapshot (counters, histograms, additive gauges)
and takes non-additive gauges from the answering worker only; a worker that exits is counted
from then on through the archive (its counters, not its gauges) and never twice; a worker
killed without a final snapshot keeps what it last answered; a worker that does not answer
in time is counted with its last answer and does not hold the scrape; malformed snapshots
are left out; counters never go backwards over all of that; the directory must be private.
Past the limit, the series kept are the server's (the admitted record), whichever worker
answers, and a newcomer's series do not displace them; float totals are exact, the same
whoever answers and after a worker's value moved into the archive.
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_django.config import Prefork
from otel_django.metrics import multiprocess
from otel_django.metrics.exposition import (
    ALL,
    COUNTER,
    GAUGE,
    HISTOGRAM,
    LIVE,
    LOCAL,
    OVERFLOW_LABELS,
    Family,
    Snapshot,
    from_json,
    to_json,
)
from otel_django.metrics.multiprocess import Exchange


class Worker:
    """A fake worker whose metrics the test sets."""

    def __init__(
        self,
        directory: Path,
        requests: int = 0,
        peer_timeout_s: float = multiprocess.PEER_TIMEOUT_S,
    ) -> None:
        self.requests = requests
        self.active = 1
        self.exchange = Exchange(directory, self.snapshot, limit=100, peer_timeout_s=peer_timeout_s)

    def snapshot(self) -> Snapshot:
        return Snapshot(
            {
                "requests_total": Family(
                    "requests_total", COUNTER, "r", ALL, points={'route="a"': self.requests}
                ),
                "latency_seconds": Family(
                    "latency_seconds",
                    HISTOGRAM,
                    "l",
                    ALL,
                    (0.1, 1.0),
                    {'route="a"': [self.requests, 0.5 * self.requests, [self.requests, 0, 0]]},
                ),
                "active": Family("active", GAUGE, "a", LIVE, points={"": self.active}),
                "unapplied": Family("unapplied", GAUGE, "u", LOCAL, points={"": 7}),
            },
            {"service.name": "svc", "process.pid": str(id(self))},
        )

    def scrape(self) -> Snapshot:
        return self.exchange.gather(self.snapshot())


def value(snapshot: Snapshot, name: str) -> float:
    point = snapshot.families[name].points.get('route="a"', snapshot.families[name].points.get(""))
    return point[0] if isinstance(point, list) else point


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "exchange"
    yield path


@pytest.fixture
def workers(directory: Path) -> Iterator[list[Worker]]:
    started = [Worker(directory, requests=10 * (i + 1)) for i in range(3)]
    for worker in started:
        worker.exchange.start()
    yield started
    for worker in started:
        worker.exchange.close()


def test_scrape_adds_up_live_workers(workers: list[Worker]) -> None:
    for worker in workers:
        merged = worker.scrape()
        assert value(merged, "requests_total") == 60
        assert value(merged, "latency_seconds") == 60
        assert merged.families["latency_seconds"].points['route="a"'][2] == [60, 0, 0]
        assert value(merged, "active") == 3
        assert value(merged, "unapplied") == 7  # the answering worker's, not 21
        assert merged.resource == {"service.name": "svc"}  # what all workers share
    assert os.stat(workers[0].exchange.directory).st_mode & 0o777 == 0o700


def test_exited_worker_stays_counted_once(workers: list[Worker], directory: Path) -> None:
    a, b, c = workers
    assert value(a.scrape(), "requests_total") == 60
    c.requests += 5  # counted after the last scrape, then it exits cleanly
    c.exchange.close()
    seen = [value(a.scrape(), "requests_total") for _ in range(3)]
    seen += [value(b.scrape(), "requests_total") for _ in range(2)]
    assert seen == [65] * 5
    assert value(a.scrape(), "active") == 2  # its gauge left with it
    assert (directory / "archive.json").exists()
    assert not list(directory.glob(f"{c.exchange.worker_id}.*"))
    replacement = Worker(directory, requests=0)
    replacement.exchange.start()
    try:
        assert value(b.scrape(), "requests_total") == 65
        replacement.requests = 4
        assert value(replacement.scrape(), "requests_total") == 69
    finally:
        replacement.exchange.close()


def test_killed_worker_keeps_its_last_answer(workers: list[Worker], directory: Path) -> None:
    a, b, c = workers
    assert value(a.scrape(), "requests_total") == 60
    c.requests += 5  # never answered: lost with the process
    server = c.exchange._server
    assert server is not None
    c.exchange._closed = True
    server.shutdown(socket.SHUT_RDWR)
    server.close()  # like SIGKILL: no final snapshot, the socket file stays
    assert (directory / f"{c.exchange.worker_id}.sock").exists()
    assert [value(b.scrape(), "requests_total") for _ in range(3)] == [60, 60, 60]
    assert not (directory / f"{c.exchange.worker_id}.sock").exists()


def test_slow_worker_counted_with_its_last_answer(workers: list[Worker], directory: Path) -> None:
    a, _, _ = workers
    assert value(a.scrape(), "requests_total") == 60
    # A worker that accepts and never answers (stuck holding the GIL elsewhere, say).
    stuck_id = "99999-stuck"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(directory / f"{stuck_id}.sock"))
    listener.listen(4)
    (directory / f"{stuck_id}.json").write_bytes(to_json(Worker(directory, 1000).snapshot()))
    impatient = Worker(directory, requests=0, peer_timeout_s=0.3)  # adds nothing to the sums
    impatient.exchange.start()
    try:
        start = time.monotonic()
        assert value(impatient.scrape(), "requests_total") == 1060
        assert time.monotonic() - start < 2
    finally:
        listener.close()
        impatient.exchange.close()
    # Now gone (refuses connections): its last snapshot moves to the archive.
    assert value(a.scrape(), "requests_total") == 1060
    assert value(a.scrape(), "requests_total") == 1060


def test_malformed_snapshot_is_left_out(workers: list[Worker], directory: Path) -> None:
    (directory / "12345-garbage.json").write_bytes(b"{not json")
    (directory / "12346-wrong.json").write_bytes(b'{"v": 1, "resource": {}, "families": [[1]]}')
    assert value(workers[0].scrape(), "requests_total") == 60
    assert value(workers[1].scrape(), "requests_total") == 60


def test_counters_never_go_backwards_under_churn(directory: Path) -> None:
    live = [Worker(directory, 0) for _ in range(3)]
    for worker in live:
        worker.exchange.start()
    last = 0.0
    total_requests = 0
    try:
        for round_number in range(12):
            for worker in live:
                worker.requests += 3
                total_requests += 3
            if round_number % 3 == 2:  # a clean restart
                old = live.pop(0)
                old.exchange.close()
                new = Worker(directory, 0)
                new.exchange.start()
                live.append(new)
            seen = value(live[round_number % len(live)].scrape(), "requests_total")
            assert seen >= last
            assert seen == total_requests
            last = seen
    finally:
        for worker in live:
            worker.exchange.close()


def test_concurrent_scrapes_agree(workers: list[Worker]) -> None:
    results: list[float] = []

    def scrape(worker: Worker) -> None:
        for _ in range(5):
            results.append(value(worker.scrape(), "requests_total"))

    threads = [threading.Thread(target=scrape, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [60] * 15


def test_directory_must_be_private(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with pytest.raises(PermissionError):
        Worker(shared).exchange.start()


def test_json_round_trip_and_rejects() -> None:
    snapshot = Worker(Path("/nonexistent")).snapshot()
    again = from_json(to_json(snapshot))
    assert again.families["latency_seconds"].points == snapshot.families["latency_seconds"].points
    for raw in (
        b"",
        b"[]",
        b'{"v": 2}',
        b'{"v":1,"resource":{},"families":[["x","bogus","","all",[],{}]]}',
        b'{"v":1,"resource":{},"families":[["x","histogram","","all",[1.0],{"":[1,1,[1]]}]]}',
        b'{"v":1,"resource":{},"families":[["x","counter","","all",[],{"":"1"}]]}',
        b"\xff\xfe",
    ):
        with pytest.raises(ValueError):
            from_json(raw)


def test_wanted() -> None:
    assert multiprocess.wanted("/some/dir", Prefork.AUTO)
    assert multiprocess.wanted(None, Prefork.TRUE)
    assert not multiprocess.wanted(None, Prefork.FALSE)
    assert not multiprocess.wanted(None, Prefork.AUTO)  # pytest is not gunicorn


def test_stale_directories_of_gone_masters_are_removed(tmp_path: Path) -> None:
    gone = tmp_path / "otel_django-999999999-12345"  # no such pid
    gone.mkdir(mode=0o700)
    (gone / "1-abc.json").write_text("{}")
    ours = multiprocess.default_directory(str(tmp_path))  # our parent (pytest) is alive
    ours.mkdir(mode=0o700)
    unrelated = tmp_path / "something-else"
    unrelated.mkdir()
    multiprocess.remove_stale_directories(str(tmp_path))
    assert not gone.exists()
    assert ours.exists() and unrelated.exists()


class LabelledWorker:
    """A fake worker whose counter has one series per label value, with given float values."""

    def __init__(self, directory: Path, values: dict[str, float], limit: int) -> None:
        self.values = values
        self.exchange = Exchange(directory, self.snapshot, limit=limit)

    def snapshot(self) -> Snapshot:
        points = {f'route="{k}"': v for k, v in self.values.items()}
        histogram = {f'route="{k}"': [1, v, [1, 0]] for k, v in self.values.items()}
        return Snapshot(
            {
                "seconds_total": Family("seconds_total", COUNTER, "s", ALL, points=points),
                "latency": Family("latency", HISTOGRAM, "l", ALL, (1.0,), histogram),
            }
        )

    def scrape(self) -> dict[str, float]:
        return self.exchange.gather(self.snapshot()).families["seconds_total"].points


def test_kept_series_are_decided_once_for_the_server(directory: Path) -> None:
    limit = 4  # 3 series of their own and the overflow series
    workers = [
        LabelledWorker(directory, {"a": 1, "b": 1, "x0": 1}, limit),
        LabelledWorker(directory, {"c": 1, "d": 1, "x1": 1}, limit),
        LabelledWorker(directory, {"e": 1, "f": 1, "x2": 1}, limit),
    ]
    for worker in workers:
        worker.exchange.start()
    try:
        first = workers[0].scrape()
        assert len(first) == limit and first[OVERFLOW_LABELS] == 6
        for round_number in range(6):  # whichever worker answers, and as counts grow
            for worker in workers:
                for key in worker.values:
                    worker.values[key] += 1
            seen = workers[round_number % 3].scrape()
            assert seen.keys() == first.keys()
            assert all(seen[k] >= first[k] for k in first)
            assert sum(seen.values()) == 9 * (round_number + 2)
        assert (directory / multiprocess.ADMITTED).exists()

        # A new worker's series are not admitted when the server is full; an exited worker's
        # admitted series stay, through the archive.
        workers[1].exchange.close()
        newcomer = LabelledWorker(directory, {"g": 5, "a": 5}, limit)
        newcomer.exchange.start()
        workers[1] = newcomer
        after = workers[0].scrape()
        assert after.keys() == first.keys()
        assert after['route="a"'] == seen['route="a"'] + 5
        assert sum(after.values()) == sum(seen.values()) + 10
    finally:
        for worker in workers:
            worker.exchange.close()


def test_float_totals_do_not_depend_on_who_answers_or_on_exits(directory: Path) -> None:
    # (0.1 + 0.2) + 0.3 != 0.1 + (0.2 + 0.3) in floating point: a counter shown one way, then
    # the other, would go backwards by its last bit, which Prometheus takes for a reset.
    workers = [LabelledWorker(directory, {"a": v}, limit=100) for v in (0.1, 0.2, 0.3)]
    for worker in workers:
        worker.exchange.start()
    try:
        totals = {worker.scrape()['route="a"'] for worker in workers}
        assert totals == {0.6}
        workers[1].exchange.close()  # its 0.2 moves into the archive
        assert {w.scrape()['route="a"'] for w in (workers[0], workers[2])} == {0.6}
        workers[2].exchange.close()
        merged = workers[0].exchange.gather(workers[0].snapshot())
        assert merged.families["seconds_total"].points['route="a"'] == 0.6
        assert merged.families["latency"].points['route="a"'][1] == 0.6
    finally:
        for worker in workers:
            worker.exchange.close()


def test_admitted_record_survives_a_corrupt_file(directory: Path) -> None:
    worker = LabelledWorker(directory, {"a": 1}, limit=10)
    worker.exchange.start()
    try:
        assert worker.scrape()['route="a"'] == 1
        (directory / multiprocess.ADMITTED).write_bytes(b"{broken")
        assert worker.scrape()['route="a"'] == 1  # logged, admitted anew
    finally:
        worker.exchange.close()


def test_peers_are_asked_at_once_not_one_after_another(
    workers: list[Worker], directory: Path
) -> None:
    """Several stuck peers cost one peer timeout, not one each: all are asked before the
    first one's time is up (asked one after another, each would wait for the previous)."""
    asker = Worker(directory, requests=0, peer_timeout_s=1.5)  # adds nothing to the sums
    asker.exchange.start()
    asked: list[float] = []
    listeners = []
    for n in range(3):
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(directory / f"9999{n}-stuck.sock"))
        listener.listen(4)
        listeners.append(listener)
        (directory / f"9999{n}-stuck.json").write_bytes(to_json(Worker(directory, 100).snapshot()))

    def stuck(listener: socket.socket) -> None:
        conn, _ = listener.accept()
        if conn.recv(1) == b"?":
            asked.append(time.monotonic())
        time.sleep(2.5)  # never answers in time
        conn.close()

    threads = [threading.Thread(target=stuck, args=(listener,)) for listener in listeners]
    for thread in threads:
        thread.start()
    try:
        assert value(asker.scrape(), "requests_total") == 60 + 300
        assert len(asked) == 3 and max(asked) - min(asked) < 1.5
    finally:
        asker.exchange.close()
        for thread in threads:
            thread.join()
        for listener in listeners:
            listener.close()


def test_the_archive_stays_small_however_many_workers_exit(directory: Path) -> None:
    scraper = LabelledWorker(directory, {"a": 1, "b": 0.5}, limit=100)
    scraper.exchange.start()
    try:
        for n in range(12):  # integer totals ("a") and float ones ("b")
            worker = LabelledWorker(directory, {"a": n + 1, "b": 0.1 * (n + 1)}, limit=100)
            worker.exchange.start()
            scraper.scrape()
            worker.exchange.close()
            scraper.scrape()
        document = json.loads((directory / multiprocess.ARCHIVE).read_bytes())
        kept = [p for family in document.get("partials", {}).values() for p in family.values()]
        assert all(len(parts) <= 3 for parts in kept), kept
        merged = scraper.exchange.gather(scraper.snapshot()).families["seconds_total"].points
        assert merged['route="a"'] == 1 + sum(range(1, 13))
        assert merged['route="b"'] == math.fsum([0.5, *(0.1 * (n + 1) for n in range(12))])
    finally:
        scraper.exchange.close()
