"""Instruction counts with ``valgrind --tool=callgrind``, windowed by client requests.

The worker process runs under callgrind with instrumentation off at start
(``--instr-atstart=no``: imports and Django's setup run at valgrind's plain speed), switches
it on once warmed up, and brackets each measured piece of work with
:meth:`Counter.zero` and :meth:`Counter.dump`. Each dump writes one file whose ``summary:``
line is the instructions executed by every thread of the process since the zero;
:func:`read_dumps` collects them by label.

The client requests are C macros (``valgrind/callgrind.h``), so a four-function helper is
compiled once with the system C compiler and loaded through ctypes.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

HELPER_SOURCE = Path(__file__).resolve().parent / "callgrind_helper.c"
VALGRIND_OPTIONS = (
    "--tool=callgrind",
    "--instr-atstart=no",
    # Only the totals are read: no per-line or per-instruction detail to write.
    "--dump-line=no",
    "--dump-instr=no",
)


class Unavailable(RuntimeError):
    """valgrind, a C compiler or ``valgrind/callgrind.h`` is missing."""


def missing_tools() -> str | None:
    """Why instruction counts cannot be taken here, or None."""
    if shutil.which("valgrind") is None:
        return "valgrind is not installed (apt-get install valgrind)"
    if shutil.which(os.environ.get("CC", "cc")) is None:
        return "no C compiler (cc) to build the callgrind helper"
    for include in ("/usr/include", "/usr/local/include"):
        if Path(include, "valgrind", "callgrind.h").exists():
            return None
    return "valgrind/callgrind.h not found (Debian's valgrind package ships it)"


def build_helper() -> Path:
    """Compiles the helper (once per source version) into the temporary directory."""
    reason = missing_tools()
    if reason:
        raise Unavailable(reason)
    source = HELPER_SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:12]
    target = Path(tempfile.gettempdir()) / f"otel-django-callgrind-{digest}.so"
    if not target.exists():
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        compiler = os.environ.get("CC", "cc")
        subprocess.run(
            [compiler, "-O2", "-shared", "-fPIC", "-o", str(partial), str(HELPER_SOURCE)],
            check=True,
            capture_output=True,
        )
        partial.replace(target)
    return target


class Counter:
    """The client requests, in the process being counted."""

    def __init__(self, helper: str | os.PathLike[str]) -> None:
        self._lib = ctypes.CDLL(os.fspath(helper))
        self._lib.otel_bench_dump.argtypes = [ctypes.c_char_p]
        self._zero = self._lib.otel_bench_zero
        self._dump = self._lib.otel_bench_dump

    @property
    def on_valgrind(self) -> bool:
        return bool(self._lib.otel_bench_on_valgrind())

    def start_instrumentation(self) -> None:
        self._lib.otel_bench_start_instrumentation()

    def zero(self) -> None:
        self._zero()

    def dump(self, label: str) -> None:
        self._dump(label.encode())


def command(out_file: str | os.PathLike[str], argv: Sequence[str]) -> list[str]:
    """``argv`` (an interpreter and its arguments) run under callgrind, dumping to ``out_file``."""
    return ["valgrind", *VALGRIND_OPTIONS, f"--callgrind-out-file={os.fspath(out_file)}", *argv]


_TRIGGER = re.compile(r"^desc: Trigger: Client Request: (.*)$", re.MULTILINE)
_SUMMARY = re.compile(r"^summary: (\d+)$", re.MULTILINE)


def read_dumps(out_file: str | os.PathLike[str]) -> list[tuple[str, int]]:
    """``(label, instructions)`` of each client-request dump, in order (``out_file.1`` ...)."""
    base = Path(out_file)
    dumps = []
    for path in base.parent.glob(base.name + ".*"):
        suffix = path.name[len(base.name) + 1 :]
        if not suffix.isdigit():
            continue
        head = path.read_text(errors="replace")
        trigger, summary = _TRIGGER.search(head), _SUMMARY.search(head)
        if trigger is None or summary is None:
            raise ValueError(f"{path}: not a client-request dump")
        dumps.append((int(suffix), trigger.group(1), int(summary.group(1))))
    return [(label, count) for _, label, count in sorted(dumps)]


if __name__ == "__main__":  # python -m benchmarks.callgrind: checks the tools
    problem = missing_tools()
    print(problem or f"ok: {build_helper()}")
    sys.exit(1 if problem else 0)
