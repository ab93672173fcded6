"""OTel names, units and attributes -> Prometheus names and labels.

Units map as in ``opentelemetry-exporter-prometheus`` (``map_unit``, after the OTel
specification and the collector's translator): ``s`` -> ``seconds``, ``By`` -> ``bytes``,
``By/s`` -> ``bytes_per_second``, ``m`` in a denominator is a minute; ``1`` and ``{...}``
annotations add nothing. ``tests/metrics/test_naming.py`` holds this copy to upstream's
function over every unit the semantic conventions use and every unit either table knows.
Invalid characters of names become ``_``, the unit is appended and monotonic sums get
``_total``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence

__all__ = [
    "PER_UNITS",
    "UNITS",
    "escape_help",
    "format_float",
    "format_value",
    "label_name",
    "label_string",
    "label_value",
    "metric_name",
    "unit_suffix",
]

_INVALID_NAME = re.compile(r"[^a-zA-Z0-9_:]")
_INVALID_LABEL = re.compile(r"[^a-zA-Z0-9_]")
_REPEATED_UNDERSCORE = re.compile(r"__+")
_INVALID_UNIT = re.compile(r"[^a-zA-Z0-9:]+")
_ANNOTATIONS = re.compile(r"\{.*\}")  # from the first "{" to the last "}", as upstream

UNITS = {
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    "Cel": "celsius",
    "Hz": "hertz",
    "1": "",
    "%": "percent",
}
# A denominator: singular, and ``m`` is a minute there (``By/m`` -> ``bytes_per_minute``).
PER_UNITS = {
    "s": "second",
    "m": "minute",
    "h": "hour",
    "d": "day",
    "w": "week",
    "mo": "month",
    "y": "year",
}


def unit_suffix(unit: str) -> str:
    """The name suffix for an OTel unit: ``By/s`` -> ``bytes_per_second``, ``{request}`` -> ""."""
    unit = _ANNOTATIONS.sub("", unit or "")
    known = UNITS.get(unit)
    if known is not None:
        return known
    numerator, slash, denominator = unit.partition("/")
    denominator = _INVALID_UNIT.sub("_", denominator)
    if slash and denominator:
        numerator = _INVALID_UNIT.sub("_", numerator)
        per = "per_" + PER_UNITS.get(denominator, denominator)
        numerator = UNITS.get(numerator, numerator)
        return f"{numerator}_{per}" if numerator else per
    return _INVALID_UNIT.sub("_", unit).strip("_")


def metric_name(name: str, unit: str, monotonic_sum: bool) -> str:
    """``http.server.request.duration`` + ``s`` -> ``http_server_request_duration_seconds``."""
    base = _INVALID_NAME.sub("_", name)
    suffix = unit_suffix(unit)
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
