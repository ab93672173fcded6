"""OTel ``MetricsData`` -> snapshot -> Prometheus text or OpenMetrics.

A *snapshot* holds every series keyed by its rendered label string, which makes it cheap to
render, to merge with other workers' snapshots (same label string, same series) and to send
as JSON. Label strings are computed once per attribute set: the SDK hands out the same
attributes object for a series on every collection, so they are cached by identity.

A histogram point may carry exemplars, at most one per bucket: rendered in OpenMetrics only
(the 0.0.4 text format has no place for them), and merged so that each bucket keeps the
newest exemplar any worker had for it.

Counters and histogram sums of several workers are added up exactly: each merged float is the
correctly rounded sum of every worker's value (``math.fsum``), and the archive of exited
workers keeps its float sums as exact partials. A float addition in another order, or a
worker's value moving into the archive, would otherwise change a total by its last bit, up or
down, and Prometheus reads any decrease of a counter as a reset.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import Gauge, Histogram, MetricsData, Sum

from .cardinality import series_key
from .naming import escape_help, format_float, format_value, label_string, metric_name

logger = logging.getLogger("otel_django.metrics")

COUNTER = "counter"
GAUGE = "gauge"
HISTOGRAM = "histogram"

# How a family is merged over the workers of one server.
ALL = "all"  # counters and histograms: every worker, including exited ones
LIVE = "live"  # additive gauges (up-down counters): summed over the live workers
LOCAL = "local"  # non-additive gauges: the value of the worker that answers the scrape

OVERFLOW_LABELS = 'otel_metric_overflow="true"'
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

# value, timestamp (seconds), trace id (32 hex digits), span id (16 hex digits)
Exemplar = tuple[float, float, str, str]
# [count, sum, bucket counts] or [count, sum, bucket counts, one Exemplar or None per bucket]
HistogramValue = list[Any]

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")


@dataclasses.dataclass(slots=True)
class Family:
    name: str  # the Prometheus name; counters end in _total
    kind: str
    help: str
    merge: str
    bounds: tuple[float, ...] = ()
    points: dict[str, Any] = dataclasses.field(default_factory=dict)
    # labels -> numbers whose exact sum is the series' counter value or histogram sum (the
    # point holds it rounded): kept for merges of ALL families, see settle().
    partials: dict[str, list[float]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(slots=True)
class Snapshot:
    families: dict[str, Family]
    resource: dict[str, str] = dataclasses.field(default_factory=dict)


class Snapshotter:
    """Turns the reader's ``MetricsData`` into a :class:`Snapshot`, caching names and labels."""

    def __init__(self) -> None:
        self._labels: dict[int, tuple[object, str]] = {}
        self._names: dict[tuple[str, str, type, bool], tuple[str, str, str]] = {}
        self._resource: tuple[object, dict[str, str]] | None = None

    def _label(self, attributes: Mapping[str, Any] | None) -> str:
        if not attributes:
            return ""
        cached = self._labels.get(id(attributes))
        if cached is not None and cached[0] is attributes:
            return cached[1]
        labels = label_string(attributes)
        self._labels[id(attributes)] = (attributes, labels)
        return labels

    def _describe(self, name: str, unit: str, data: object) -> tuple[str, str, str] | None:
        monotonic = bool(getattr(data, "is_monotonic", False))
        key = (name, unit, type(data), monotonic)
        described = self._names.get(key)
        if described is None:
            if isinstance(data, Sum):
                kind = COUNTER if monotonic else GAUGE
                merge = ALL if monotonic else LIVE
            elif isinstance(data, Histogram):
                kind, merge = HISTOGRAM, ALL
            elif isinstance(data, Gauge):
                kind, merge = GAUGE, LOCAL
            else:  # exponential histograms have no Prometheus text form: left out
                return None
            described = (metric_name(name, unit, kind == COUNTER), kind, merge)
            self._names[key] = described
        return described

    def take(self, data: MetricsData | None) -> Snapshot:
        families: dict[str, Family] = {}
        resource: dict[str, str] = {}
        seen = 0
        for resource_metrics in data.resource_metrics if data is not None else ():
            resource = self._resource_labels(resource_metrics.resource.attributes)
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    described = self._describe(metric.name, metric.unit or "", metric.data)
                    if described is None:
                        continue
                    prom_name, kind, merge = described
                    family = families.get(prom_name)
                    if family is None:
                        family = families[prom_name] = Family(
                            prom_name, kind, metric.description or "", merge
                        )
                    elif family.kind != kind:
                        logger.warning(
                            "metric %s is defined twice with different types; "
                            "the second is left out",
                            prom_name,
                        )
                        continue
                    points = family.points
                    label = self._label
                    if kind == HISTOGRAM:
                        for point in metric.data.data_points:
                            bounds = tuple(point.explicit_bounds)  # type: ignore[union-attr]
                            if not family.bounds:
                                family.bounds = bounds
                            elif bounds != family.bounds:
                                continue
                            key = label(point.attributes)
                            hist: HistogramValue = [
                                point.count,  # type: ignore[union-attr]
                                point.sum,  # type: ignore[union-attr]
                                point.bucket_counts,  # type: ignore[union-attr]
                            ]
                            sampled = getattr(point, "exemplars", None)
                            if sampled:
                                exemplars = _sdk_exemplars(sampled, bounds)
                                if exemplars is not None:
                                    hist.append(exemplars)
                            if key in points:
                                hist = add_histogram(points[key], hist)
                            points[key] = hist
                    else:
                        for point in metric.data.data_points:
                            key = label(point.attributes)
                            number = point.value  # type: ignore[union-attr]
                            points[key] = points[key] + number if key in points else number
                    seen += len(points)
        if len(self._labels) > 2 * seen + 1000:
            self._labels.clear()
        return Snapshot(families, resource)

    def _resource_labels(self, attributes: Mapping[str, Any]) -> dict[str, str]:
        if self._resource is not None and self._resource[0] is attributes:
            return self._resource[1]
        labels = {key: str(value) for key, value in attributes.items()}
        self._resource = (attributes, labels)
        return labels


def _sdk_exemplars(
    sampled: Sequence[Any], bounds: tuple[float, ...]
) -> list[Exemplar | None] | None:
    """A histogram point's SDK exemplars, newest per bucket; those without a trace left out."""
    exemplars: list[Exemplar | None] = [None] * (len(bounds) + 1)
    found = False
    for exemplar in sampled:
        if not exemplar.trace_id or not exemplar.span_id:
            continue
        index = bisect_left(bounds, exemplar.value)
        timestamp = exemplar.time_unix_nano / 1e9
        current = exemplars[index]
        if current is None or current[1] <= timestamp:
            exemplars[index] = (
                exemplar.value,
                timestamp,
                format(exemplar.trace_id, "032x"),
                format(exemplar.span_id, "016x"),
            )
            found = True
    return exemplars if found else None


def newest_exemplars(
    a: list[Exemplar | None] | None, b: list[Exemplar | None] | None
) -> list[Exemplar | None] | None:
    """Per bucket, the newer of two exemplars."""
    if a is None:
        return None if b is None else list(b)
    if b is None:
        return list(a)
    return [
        x if y is None or (x is not None and x[1] >= y[1]) else y for x, y in zip(a, b, strict=True)
    ]


def copy_histogram(value: HistogramValue) -> HistogramValue:
    if len(value) > 3 and value[3] is not None:
        return [value[0], value[1], list(value[2]), list(value[3])]
    return [value[0], value[1], list(value[2])]


def add_histogram(a: HistogramValue, b: HistogramValue) -> HistogramValue:
    total = [a[0] + b[0], a[1] + b[1], [x + y for x, y in zip(a[2], b[2], strict=True)]]
    if len(a) > 3 or len(b) > 3:
        exemplars = newest_exemplars(a[3] if len(a) > 3 else None, b[3] if len(b) > 3 else None)
        if exemplars is not None:
            total.append(exemplars)
    return total


def merge_into(
    target: dict[str, Family],
    source: Mapping[str, Family],
    merges: Iterable[str],
    limit: int,
    admitted: dict[str, set[str]] | None = None,
    exact: bool = False,
) -> None:
    """Adds ``source``'s families of the given merge kinds into ``target``.

    A family never holds more than ``limit`` series: label sets beyond it are added to the
    ``otel_metric_overflow="true"`` series (``cardinality.series_key``, the SDK's rule), so
    totals stay right and memory stays bounded.
    Which label sets keep a series of their own is first come, first kept in ``target``;
    with ``admitted`` (family name -> label sets, updated in place) it is that record's: a
    label set is admitted for good when first seen while its family has room, and every
    other goes to overflow, in whatever order sources come. With ``exact``, the values added
    to counters and histogram sums are kept as ``partials`` for :func:`settle`.
    """
    wanted = frozenset(merges)
    for name, family in source.items():
        if family.merge not in wanted:
            continue
        into = target.get(name)
        if into is None or (not into.points and into.kind == family.kind):
            into = target[name] = Family(
                family.name, family.kind, family.help, family.merge, family.bounds
            )
        elif into.kind != family.kind or into.bounds != family.bounds:
            logger.warning(
                "metric %s has two different definitions (workers, or SDK and otel_django); "
                "the series of one are left out",
                name,
            )
            continue
        points = into.points
        histogram = family.kind == HISTOGRAM
        exact_sums = exact and family.merge == ALL
        kept = admitted.setdefault(name, set()) if admitted is not None else None
        source_partials = family.partials
        partials = into.partials
        for key, value in family.points.items():
            if exact_sums:
                parts = source_partials.get(key) if source_partials else None
            if kept is None:
                key = series_key(key, points, limit, OVERFLOW_LABELS)
            elif key not in kept:
                key = series_key(key, kept, limit, OVERFLOW_LABELS)
                if key != OVERFLOW_LABELS:
                    kept.add(key)
            previous = points.get(key)
            if previous is None:
                points[key] = copy_histogram(value) if histogram else value
            elif histogram:
                points[key] = add_histogram(previous, value)
            else:
                points[key] = previous + value
            if exact_sums:
                contributions = partials.get(key)
                if contributions is None:
                    contributions = partials[key] = (
                        [] if previous is None else [previous[1] if histogram else previous]
                    )
                if parts:
                    contributions.extend(parts)
                else:
                    contributions.append(value[1] if histogram else value)


def settle(families: Mapping[str, Family], compact: bool = False) -> None:
    """Sets every merged float total to the correctly rounded sum of its contributions.

    With ``compact``, contributions are also reduced to a few exact partials (for the
    archive, which keeps them from one exit to the next)."""
    for family in families.values():
        histogram = family.kind == HISTOGRAM
        for key, parts in family.partials.items():
            if len(parts) < 2:
                continue
            if any(isinstance(p, float) for p in parts):
                total = _exact_sum(parts)
                if compact:
                    family.partials[key] = _exact_partials(parts)
            else:  # integers add up exactly
                total = sum(parts)
                if compact:
                    family.partials[key] = [total]
            if histogram:
                family.points[key][1] = total
            else:
                family.points[key] = total


def _exact_sum(parts: list[float]) -> float:
    try:
        return math.fsum(parts)
    except (ValueError, OverflowError):  # infinities of both signs
        return sum(parts)


def _exact_partials(parts: list[float]) -> list[float]:
    """Non-overlapping floats with the same exact sum (Shewchuk's algorithm, as fsum uses)."""
    if not all(math.isfinite(p) for p in parts):
        return [sum(parts)]
    partials: list[float] = []
    for x in parts:
        kept = 0
        for y in partials:
            if abs(x) < abs(y):
                x, y = y, x
            high = x + y
            low = y - (high - x)
            if low:
                partials[kept] = low
                kept += 1
            x = high
        partials[kept:] = [x]
    return partials


# -- JSON form, exchanged between the workers of one server


def to_json(
    snapshot: Snapshot, merges: Iterable[str] = (ALL, LIVE, LOCAL), merged: list[str] | None = None
) -> bytes:
    """The snapshot as JSON. Exemplars (``{family: {labels: [null or [value, timestamp,
    trace_id, span_id], ...]}}``) and exact partials (``{family: {labels: [numbers]}}``) are
    separate top-level members, which readers that predate them ignore (a worker started
    before an upgrade, under a master that reloaded)."""
    wanted = frozenset(merges)
    families = []
    exemplars: dict[str, dict[str, list[Any]]] = {}
    partials: dict[str, dict[str, list[float]]] = {}
    for f in snapshot.families.values():
        if f.merge not in wanted:
            continue
        exact = {k: v for k, v in f.partials.items() if len(v) > 1 and k in f.points}
        if exact:
            partials[f.name] = exact
        if f.kind == HISTOGRAM:
            points: Any = {k: [v[0], v[1], list(v[2])] for k, v in f.points.items()}
            with_exemplars = {
                k: [None if e is None else list(e) for e in v[3]]
                for k, v in f.points.items()
                if len(v) > 3 and v[3] is not None
            }
            if with_exemplars:
                exemplars[f.name] = with_exemplars
        else:
            points = f.points
        families.append([f.name, f.kind, f.help, f.merge, list(f.bounds), points])
    document: dict[str, object] = {"v": 1, "resource": snapshot.resource, "families": families}
    if exemplars:
        document["exemplars"] = exemplars
    if partials:
        document["partials"] = partials
    if merged is not None:
        document["merged"] = merged
    return json.dumps(document, separators=(",", ":")).encode()


def from_json(raw: bytes) -> Snapshot:
    """Parses :func:`to_json` output; raises ``ValueError`` on anything else."""
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(document, dict) or document.get("v") != 1:
        raise ValueError("not a metrics snapshot")
    resource = document.get("resource")
    raw_families = document.get("families")
    if not isinstance(resource, dict) or not isinstance(raw_families, list):
        raise ValueError("not a metrics snapshot")
    families: dict[str, Family] = {}
    for item in raw_families:
        if not isinstance(item, list) or len(item) != 6:
            raise ValueError("malformed family")
        name, kind, help_, merge, bounds, points = item
        if not (
            isinstance(name, str)
            and kind in (COUNTER, GAUGE, HISTOGRAM)
            and isinstance(help_, str)
            and merge in (ALL, LIVE, LOCAL)
            and isinstance(bounds, list)
            and isinstance(points, dict)
        ):
            raise ValueError("malformed family")
        for value in points.values():
            if kind == HISTOGRAM:
                if not (
                    isinstance(value, list)
                    and len(value) == 3
                    and isinstance(value[2], list)
                    and len(value[2]) == len(bounds) + 1
                ):
                    raise ValueError(f"malformed histogram point in {name}")
            elif not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"malformed point in {name}")
        families[name] = Family(name, kind, help_, merge, tuple(float(b) for b in bounds), points)
    raw_exemplars = document.get("exemplars", {})
    if not isinstance(raw_exemplars, dict):
        raise ValueError("malformed exemplars")
    for name, by_labels in raw_exemplars.items():
        family = families.get(name)
        if family is None or family.kind != HISTOGRAM or not isinstance(by_labels, dict):
            raise ValueError(f"malformed exemplars of {name}")
        for key, exemplars in by_labels.items():
            point = family.points.get(key)
            if point is None:
                raise ValueError(f"exemplars of a missing series of {name}")
            point.append(_parse_exemplars(exemplars, len(family.bounds) + 1, name))
    raw_partials = document.get("partials", {})
    if not isinstance(raw_partials, dict):
        raise ValueError("malformed partials")
    for name, by_labels in raw_partials.items():
        family = families.get(name)
        if family is None or not isinstance(by_labels, dict):
            raise ValueError(f"malformed partials of {name}")
        for key, parts in by_labels.items():
            if key not in family.points or not (
                isinstance(parts, list)
                and all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in parts)
            ):
                raise ValueError(f"malformed partials of {name}")
            family.partials[key] = parts
    return Snapshot(families, {str(k): str(v) for k, v in resource.items()})


def _parse_exemplars(raw: object, buckets: int, name: str) -> list[Exemplar | None]:
    if not isinstance(raw, list) or len(raw) != buckets:
        raise ValueError(f"malformed exemplars of {name}")
    exemplars: list[Exemplar | None] = []
    for item in raw:
        if item is None:
            exemplars.append(None)
            continue
        if not (
            isinstance(item, list)
            and len(item) == 4
            and all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in item[:2])
            and isinstance(item[2], str)
            and _TRACE_ID.fullmatch(item[2])
            and isinstance(item[3], str)
            and _SPAN_ID.fullmatch(item[3])
        ):
            raise ValueError(f"malformed exemplar in {name}")
        exemplars.append((item[0], float(item[1]), item[2], item[3]))
    return exemplars


# -- rendering


class Renderer:
    """Renders snapshots; keeps the constant text of each series between scrapes."""

    def __init__(self) -> None:
        self._headers: dict[tuple[str, str, str, bool], str] = {}
        self._prefixes: dict[tuple[str, str], str] = {}
        self._templates: dict[tuple[str, tuple[float, ...], str, bool], str] = {}
        self._exemplars: dict[Exemplar, str] = {}

    def render(
        self,
        snapshot: Snapshot,
        openmetrics: bool = False,
        resource_labels: Mapping[str, str] | None = None,
    ) -> bytes:
        out: list[str] = []
        append = out.append
        resource = snapshot.resource if resource_labels is None else resource_labels
        if resource:
            if openmetrics:
                append("# TYPE target info\n# HELP target Target metadata\n")
            else:
                append("# HELP target_info Target metadata\n# TYPE target_info gauge\n")
            append(f"target_info{{{label_string(resource)}}} 1\n")
        for name in sorted(snapshot.families):
            family = snapshot.families[name]
            if not family.points:
                continue
            append(self._header(family, openmetrics))
            if family.kind == HISTOGRAM:
                self._histogram(family, out, openmetrics)
            else:
                prefixes = self._prefixes
                for labels, value in family.points.items():
                    prefix = prefixes.get((name, labels))
                    if prefix is None:
                        prefix = prefixes[(name, labels)] = (
                            f"{name}{{{labels}}} " if labels else f"{name} "
                        )
                    append(prefix + format_value(value) + "\n")
        if openmetrics:
            append("# EOF\n")
        self._trim(snapshot)
        return "".join(out).encode()

    def _header(self, family: Family, openmetrics: bool) -> str:
        key = (family.name, family.kind, family.help, openmetrics)
        header = self._headers.get(key)
        if header is None:
            name = family.name
            if openmetrics and family.kind == COUNTER:
                name = name[: -len("_total")]
            help_line = (
                f"# HELP {name} {escape_help(family.help, openmetrics)}\n" if family.help else ""
            )
            header = self._headers[key] = f"{help_line}# TYPE {name} {family.kind}\n"
        return header

    def _histogram(self, family: Family, out: list[str], openmetrics: bool) -> None:
        templates = self._templates
        name, bounds = family.name, family.bounds
        accumulate = itertools.accumulate
        for labels, point in family.points.items():
            count, total, buckets = point[0], point[1], point[2]
            exemplars = point[3] if openmetrics and len(point) > 3 else None
            key = (name, bounds, labels, exemplars is not None)
            template = templates.get(key)
            if template is None:
                template = templates[key] = _histogram_template(
                    name, bounds, labels, exemplars is not None
                )
            if total != total or total in (float("inf"), float("-inf")):
                sum_text = format_float(total)
            else:
                sum_text = repr(total) if isinstance(total, float) else str(total)
            if exemplars is None:
                out.append(template % (*accumulate(buckets), count, sum_text))
            else:
                texts = self._exemplars
                cumulative = accumulate(buckets)
                fields: list[object] = []
                for exemplar in exemplars:
                    fields.append(next(cumulative))
                    if exemplar is None:
                        fields.append("")
                        continue
                    text = texts.get(exemplar)
                    if text is None:
                        text = texts[exemplar] = _exemplar_text(exemplar)
                    fields.append(text)
                out.append(template % (*fields, count, sum_text))

    def _trim(self, snapshot: Snapshot) -> None:
        series = sum(len(f.points) for f in snapshot.families.values())
        if len(self._prefixes) + len(self._templates) > 2 * series + 1000:
            self._prefixes.clear()
            self._templates.clear()
        if len(self._exemplars) > 16 * series + 1000:  # at most one per bucket per series
            self._exemplars.clear()


def _exemplar_text(exemplar: Exemplar) -> str:
    """`` # {trace_id="…",span_id="…"} value timestamp``: the end of an OpenMetrics bucket line."""
    value, timestamp, trace_id, span_id = exemplar
    return f' # {{trace_id="{trace_id}",span_id="{span_id}"}} {format_value(value)} {timestamp:.3f}'


def _histogram_template(
    name: str, bounds: tuple[float, ...], labels: str, exemplars: bool = False
) -> str:
    escaped = labels.replace("%", "%%")
    sep = "," if labels else ""
    end = "%s\n" if exemplars else "\n"
    lines = [
        f'{name}_bucket{{{escaped}{sep}le="{format_float(bound)}"}} %d{end}'
        for bound in (*bounds, float("inf"))
    ]
    braces = f"{{{escaped}}}" if labels else ""
    lines.append(f"{name}_count{braces} %d\n")
    lines.append(f"{name}_sum{braces} %s\n")
    return "".join(lines)
