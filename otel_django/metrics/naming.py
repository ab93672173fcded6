"""OTel names, units and attributes -> Prometheus names and labels.

The mapping is the one of ``opentelemetry-exporter-prometheus``: invalid characters become
``_``, the unit is appended (``s`` -> ``seconds``, ``By`` -> ``bytes``; ``1`` and ``{...}``
annotations add nothing) and monotonic sums get ``_total``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence

_INVALID_NAME = re.compile(r"[^a-zA-Z0-9_:]")
_INVALID_LABEL = re.compile(r"[^a-zA-Z0-9_]")
_REPEATED_UNDERSCORE = re.compile(r"__+")

UNITS = {
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "min": "minutes",
    "h": "hours",
    "d": "days",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    "Cel": "celsius",
    "Hz": "hertz",
    "%": "percent",
}


def _unit_suffix(unit: str) -> str:
    unit = re.sub(r"\{[^}]*\}", "", unit or "").strip()
    if not unit or unit == "1":
        return ""
    if "/" in unit:
        num, _, den = unit.partition("/")
        first = UNITS.get(num, num) if num and num != "1" else ""
        second = UNITS.get(den, den).rstrip("s") if den else ""
        return "_".join(p for p in (first, f"per_{second}" if second else "") if p)
    return UNITS.get(unit, unit)


def metric_name(name: str, unit: str, monotonic_sum: bool) -> str:
    """``http.server.request.duration`` + ``s`` -> ``http_server_request_duration_seconds``."""
    base = _INVALID_NAME.sub("_", name)
    suffix = _INVALID_NAME.sub("_", _unit_suffix(unit))
    if suffix and not base.endswith("_" + suffix):
        base = f"{base}_{suffix}"
    if monotonic_sum and not base.endswith("_total"):
        base += "_total"
    base = _REPEATED_UNDERSCORE.sub("_", base)
    return "_" + base if base[:1].isdigit() else base


def label_name(key: str) -> str:
    name = _REPEATED_UNDERSCORE.sub("_", _INVALID_LABEL.sub("_", key))
    return "_" + name if name[:1].isdigit() or not name else name


def label_value(value: object) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float)):
        text = format_float(value) if isinstance(value, float) else str(value)
    elif isinstance(value, Sequence):
        text = json.dumps(list(value), default=str)
    else:
        text = str(value)
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def label_string(attributes: Mapping[str, object] | None) -> str:
    """``{"http.route": "a"}`` -> ``http_route="a"``: sorted, escaped, without braces.

    Keys that collide once sanitized have their values joined with ``;`` (the OTel rule).
    """
    if not attributes:
        return ""
    merged: dict[str, str] = {}
    for key in sorted(attributes):
        name = label_name(key)
        value = label_value(attributes[key])
        merged[name] = f"{merged[name]};{value}" if name in merged else value
    return ",".join(f'{name}="{merged[name]}"' for name in sorted(merged))


def format_float(value: float) -> str:
    """A sample value as Prometheus writes it (``+Inf``, ``NaN``, ``1.5``, ``1e-05``)."""
    if value != value:
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def format_value(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return format_float(value)


def escape_help(text: str, openmetrics: bool) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if openmetrics else text
