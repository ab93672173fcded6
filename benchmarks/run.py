"""Runs every benchmark, prints one table per comparison and writes the figures as JSON.

    python -m benchmarks.run [--quick] [--json PATH] [--only NAME ...]

Every ``benchmarks/bench_*.py`` module exposing ``run(quick: bool) -> list[Comparison]`` is a
benchmark. Each module runs in a fresh child process: modules set up Django and global OTel
providers in different ways, and a module that fails does not stop the others (the exit
status is then 1). ``--quick`` runs a few iterations only, to prove everything works.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from .harness import Comparison

BENCHMARKS_DIR = Path(__file__).resolve().parent
REPO = BENCHMARKS_DIR.parent
CHILD_TIMEOUT_S = 3600.0


def discover() -> list[str]:
    """Module names of the benchmarks, ``bench_*.py`` in this directory, sorted."""
    return sorted(p.stem for p in BENCHMARKS_DIR.glob("bench_*.py"))


def _select(names: Sequence[str], only: Sequence[str]) -> list[str]:
    if not only:
        return list(names)
    wanted = {n if n.startswith("bench_") else f"bench_{n}" for n in only}
    unknown = wanted - set(names)
    if unknown:
        raise SystemExit(
            f"no such benchmark: {', '.join(sorted(unknown))} (found: {', '.join(names)})"
        )
    return [n for n in names if n in wanted]


def run_module(name: str, quick: bool) -> list[Comparison]:
    """Imports ``benchmarks.<name>`` and runs it in this process."""
    module = importlib.import_module(f"{__package__}.{name}")
    run = getattr(module, "run", None)
    if not callable(run):
        raise TypeError(f"benchmarks/{name}.py has no run(quick) function")
    comparisons = run(quick)
    if not isinstance(comparisons, list) or not all(isinstance(c, Comparison) for c in comparisons):
        raise TypeError(f"benchmarks/{name}.py: run() must return a list of Comparison")
    return comparisons


def run_in_child(name: str, quick: bool) -> tuple[list[Comparison], float]:
    """Runs one module in a fresh interpreter; raises RuntimeError with its stderr if it fails."""
    with tempfile.TemporaryDirectory(prefix="otel-django-run-") as directory:
        out = Path(directory) / "out.json"
        log_path = Path(directory) / "log.txt"
        command = [sys.executable, "-m", f"{__package__}.run", "--child", name, "--json", str(out)]
        if quick:
            command.append("--quick")
        start = time.monotonic()
        with log_path.open("wb") as log:
            try:
                process = subprocess.run(
                    command,
                    cwd=REPO,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=CHILD_TIMEOUT_S,
                    check=False,
                )
                failed = process.returncode != 0
                reason = f"exit status {process.returncode}"
            except subprocess.TimeoutExpired:
                failed, reason = True, f"no result after {CHILD_TIMEOUT_S:.0f} s"
        elapsed = time.monotonic() - start
        if failed or not out.exists():
            tail = log_path.read_text(errors="replace")[-4000:].strip()
            raise RuntimeError(f"{reason}\n{tail}")
        data = json.loads(out.read_text())
    return [Comparison.from_dict(c) for c in data["comparisons"]], elapsed


def machine() -> dict[str, object]:
    """Where the figures come from: they mean little without it."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for package in (
        "Django",
        "opentelemetry-sdk",
        "opentelemetry-exporter-otlp-proto-http",
        "opentelemetry-instrumentation-django",
        "opentelemetry-instrumentation-sqlite3",
        "django-prometheus",
        "logfire",
        "structlog",
        "prometheus-client",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    # A fixed pure-Python loop: compares this machine's speed with another's.
    reference = min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000 * 1e6
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "packages": versions,
        "load_average_at_start": [round(x, 2) for x in load] if load else None,
        "sum_range_1000_us": round(reference, 2),
    }


def _fmt(value: float | None, spec: str, none: str = "-") -> str:
    return none if value is None else format(value, spec)


def _table(rows: list[list[str]], align: str) -> list[str]:
    """Rows of cells as lines, columns padded to their widest cell (``align``: l or r each)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(align))]
    return [
        "  "
        + "  ".join(
            cell.ljust(w) if a == "l" else cell.rjust(w)
            for cell, w, a in zip(row, widths, align, strict=True)
        ).rstrip()
        for row in rows
    ]


def format_comparison(c: Comparison) -> str:
    """One comparison as a plain-text table: medians, spreads, overheads, ratios, targets."""
    names = list(c.figures)
    rounds = max((f.rounds for f in c.figures.values()), default=0)
    if c.measure == "instructions":
        lines = [f"{c.title}: instructions per {c.unit} (callgrind), over {rounds} {c.unit}s"]
        header = ["#", "candidate", "instructions", "IQR %"]
        number, signed = ",.0f", "+,.0f"
    else:
        lines = [f"{c.title}: us per {c.unit}, medians of {rounds} interleaved rounds"]
        header = ["#", "candidate", "median", "IQR %"]
        number, signed = ".1f", "+.1f"
    lines += [f"  {line}" for line in c.notes.splitlines()]
    if c.baseline:
        header += ["overhead", "x base"]
    rows = [header]
    for i, name in enumerate(names, 1):
        f = c.figures[name]
        row = [str(i), name, format(f.median_us, number), f"{f.spread_pct:.1f}"]
        if c.baseline:
            overhead = c.overhead_us(name)
            row.append(_fmt(overhead, signed) if name != c.baseline else "")
            row.append(f"{c.ratio(name, c.baseline):.2f}")
        rows.append(row)
    lines += ["", *_table(rows, "rlrrrr"[: len(header)])]
    others = [n for n in names if n != c.baseline]
    overheads = [c.overhead_us(n) for n in others]
    if c.baseline and len(others) >= 2 and all(o is not None and o > 0 for o in overheads):
        lines += ["", "  overhead ratios (row's overhead / column's overhead):"]
        index = {n: f"#{i}" for i, n in enumerate(names, 1)}
        matrix = [["", *(index[n] for n in others)]]
        for row_name in others:
            matrix.append(
                [index[row_name]]
                + [
                    _fmt(c.overhead_ratio(row_name, col), ".2f") if col != row_name else ""
                    for col in others
                ]
            )
        lines += _table(matrix, "r" * (len(others) + 1))
    if c.targets:
        lines += ["", "  targets (reported, not asserted):"]
        for t in c.targets:
            value = c.target_value(t)
            verdict = "n/a" if value is None else ("met" if value <= t.at_most else "NOT met")
            lines.append(f"    {t.label}: {_fmt(value, '.2f')} (at most {t.at_most:g}) {verdict}")
    return "\n".join(lines)


def _child(name: str, quick: bool, json_path: str) -> int:
    comparisons = run_module(name, quick)
    Path(json_path).write_text(json.dumps({"comparisons": [c.as_dict() for c in comparisons]}))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few iterations: proves it works")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument(
        "--only",
        nargs="+",
        default=(),
        metavar="NAME",
        help="run these benchmarks only (e.g. requests or bench_requests)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child, args.quick, args.json)

    names = _select(discover(), args.only)
    report: dict[str, Any] = {
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine(),
        "benchmarks": {},
    }
    failed = []
    for name in names:
        print(f"== {name}", file=sys.stderr, flush=True)
        try:
            comparisons, elapsed = run_in_child(name, args.quick)
        except RuntimeError as exc:
            failed.append(name)
            print(f"\n{name} FAILED: {exc}\n", flush=True)
            report["benchmarks"][name] = {"error": str(exc)}
            continue
        for comparison in comparisons:
            print(f"\n{format_comparison(comparison)}\n", flush=True)
        report["benchmarks"][name] = {
            "seconds": round(elapsed, 1),
            "comparisons": [c.as_dict() for c in comparisons],
        }
    report["failed"] = failed
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
