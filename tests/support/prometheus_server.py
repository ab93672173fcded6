"""A real Prometheus server (Debian's package) for the tests: started, queried, stopped."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.support.services import free_port, prometheus_tool


class PrometheusServer:
    """``prometheus`` on a free loopback port; its data and log go under ``directory``.

    ``features``: ``--enable-feature`` values, e.g. ``["exemplar-storage"]``."""

    def __init__(self, config: Path, directory: Path, features: Sequence[str] = ()) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._log = (directory / "prometheus.log").open("wb")
        self._process = subprocess.Popen(
            [
                prometheus_tool("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
                *(f"--enable-feature={feature}" for feature in features),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def api(self, path: str) -> Any:
        """The ``data`` of an HTTP API answer, e.g. ``api("/api/v1/targets")``."""
        with urllib.request.urlopen(self.url + path, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api(
            "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        )["result"]
        return result

    def value(self, expr: str) -> float | None:
        """The single value of ``expr``, or None when it has none or the server is not up yet."""
        try:
            result = self.query(expr)
        except OSError:
            return None
        return float(result[0]["value"][1]) if result else None

    def wait_value(self, expr: str, expected: float, timeout: float = 30) -> float | None:
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.value(expr)
            if value == expected:
                return value
            time.sleep(0.5)
        return value

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)
        self._log.close()
