"""The one validated configuration object of otel_django, grouped by concern.

Every environment variable and setting otel_django uses is read and validated here, once, and
nowhere else; each setting is declared once, as a field of its group (:class:`ServiceConfig`,
:class:`TracesConfig`, :class:`MetricsConfig`, :class:`DbConfig`, :class:`LoggingConfig`,
:class:`SentryConfig`, :class:`HealthConfig`) carrying its :class:`Setting` (name, sources,
parser, default, documentation). :data:`SETTINGS` lists them in declaration order (the
README's table is generated from it). Sources, highest precedence first:

1. the standard variable where one exists (``OTEL_SERVICE_NAME``, ``OTEL_TRACES_EXPORTER``
   ...), then the key of ``OTEL_RESOURCE_ATTRIBUTES`` for resource settings;
2. the ``OTEL_DJANGO_<NAME>`` environment variable;
3. the ``OTEL_DJANGO = {"<NAME>": ...}`` dict in Django settings;
4. the default.

A standard variable whose value cannot be used is ignored with a warning, as the
OpenTelemetry specification asks; an invalid value of otel_django's own (2. or 3.) is a
:class:`ConfigError`. Dotted paths (hooks, ``LOG_PROCESSORS``) are imported here and the
Sentry DSN is checked here, so an unusable one is reported like any other invalid value.
Variables that only the SDK and the exporters read (``OTEL_EXPORTER_OTLP_*``, ``OTEL_BSP_*``,
``OTEL_BLRP_*``, ``OTEL_METRIC_EXPORT_*`` ...) are left to them: the exporters and processors
are built without arguments and read them themselves. The few of them that otel_django also
looks at (:data:`EXPORTER_INPUTS`: which OTLP exporter to build) are read here too, as
are ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``, ``NO_COLOR`` and ``DJANGO_SETTINGS_MODULE``
(the default service name).

This module never imports Django settings: callers pass the settings dict in, so the
``opentelemetry-instrument`` wrapper can build a configuration before Django is configured.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import importlib.util
import ipaddress
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, cast

__all__ = [
    "SETTINGS",
    "Config",
    "ConfigError",
    "DbConfig",
    "HealthConfig",
    "LoggingConfig",
    "MetricsConfig",
    "Prefork",
    "SentryConfig",
    "ServiceConfig",
    "Setting",
    "TracesConfig",
    "disabled_config",
    "load_config",
    "sdk_disabled",
]

ENV_PREFIX = "OTEL_DJANGO_"

# Variables of the SDK's exporters and processors that otel_django reads too (export.py):
# which OTLP exporter class to build, and the queue size a refused batch size falls back to.
EXPORTER_INPUTS = (
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BLRP_MAX_QUEUE_SIZE",
)

ExemplarFilter = Literal["trace_based", "always_on", "always_off"]
LogFormat = Literal["json", "console"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Prefork(enum.StrEnum):
    """``PREFORK``: whether the process that loads the app forks the workers afterwards."""

    AUTO = "auto"  # detect gunicorn --preload, uWSGI without --lazy-apps
    TRUE = "true"
    FALSE = "false"


class ConfigError(ValueError):
    """A setting has a value otel_django cannot use. The message names the setting."""

    def __init__(
        self, setting: Setting, value: object, reason: str, where: str | None = None
    ) -> None:
        self.setting = setting
        self.value = "<hidden>" if setting.secret else value
        super().__init__(f"{where or setting.describe()}: {reason} (got {self.value!r})")


# -- parsers: raw value (str from the environment, or any Python value from settings) -> value


def _bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true or false")


def _str(raw: object) -> str:
    if not isinstance(raw, str):
        raise ValueError("expected a string")
    return raw.strip()


def _optional_str(raw: object) -> str | None:
    if raw is None:
        return None
    return _str(raw) or None


def _float_range(low: float, high: float | None = None) -> Callable[[object], float]:
    def parse(raw: object) -> float:
        if isinstance(raw, bool):
            raise ValueError("expected a number")
        try:
            value = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError("expected a number") from None
        if value != value or value < low or (high is not None and value > high):
            bound = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
            raise ValueError(f"must be {bound}")
        return value

    return parse


def _int_range(low: int, high: int | None = None) -> Callable[[object], int]:
    def parse(raw: object) -> int:
        if isinstance(raw, bool):
            raise ValueError("expected a whole number")
        try:
            value = int(str(raw).strip()) if isinstance(raw, str) else int(raw)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            raise ValueError("expected a whole number") from None
        if isinstance(raw, float) and raw != value:
            raise ValueError("expected a whole number")
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ValueError(f"must be {bound}")
        return value

    return parse


def _choice_name(raw: object) -> str:
    value = _str(raw).lower()
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", value):
        raise ValueError("expected a name such as parentbased_traceidratio")
    return value


def _choice(*choices: str) -> Callable[[object], str]:
    def parse(raw: object) -> str:
        value = _str(raw).lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return parse


def _prefork(raw: object) -> Prefork:
    return Prefork(_choice(*(p.value for p in Prefork))(raw))


def _str_tuple(raw: object) -> tuple[str, ...]:
    if isinstance(raw, str):
        items: Sequence[object] = raw.split(",")
    elif isinstance(raw, (list, tuple)):
        items = raw
    else:
        raise ValueError("expected a comma-separated string or a list of strings")
    return tuple(s for s in (_str(i) for i in items) if s)


def _name_list(raw: object) -> tuple[str, ...]:
    """``OTEL_*_EXPORTER``-style lists: comma-separated names, lowercased; ``none`` is empty."""
    names = tuple(name.lower() for name in _str_tuple(raw))
    for name in names:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", name):
            raise ValueError(f"{name!r} is not an exporter name")
    if "none" in names:
        if len(names) > 1:
            raise ValueError("none cannot be combined with other exporters")
        return ()
    return tuple(dict.fromkeys(names))


def _import(path: str) -> object:
    module_name, _, attribute = path.replace(":", ".").rpartition(".")
    if not module_name:
        raise ValueError("expected a callable or a dotted path such as mysite.telemetry.hook")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import {path}: {exc}") from None


def _hook(raw: object) -> Callable[..., Any] | None:
    """A callable, or the dotted path of one (``package.module.function``)."""
    if raw is None or callable(raw):
        return raw
    path = _str(raw)
    if not path:
        return None
    value = _import(path)
    if not callable(value):
        raise ValueError(f"{path} is not callable")
    return cast(Callable[..., Any], value)


def _processors(raw: object) -> tuple[Callable[..., Any], ...]:
    """Dotted paths of structlog processors, imported; a class is instantiated without
    arguments."""
    processors: list[Callable[..., Any]] = []
    for path in _str_tuple(raw):
        try:
            target = _import(path)
            if isinstance(target, type):
                target = target()
            if not callable(target):
                raise TypeError(f"{path!r} is not callable")
        except Exception as exc:
            raise _BadItem(path, f"cannot load the processor: {exc}") from None
        processors.append(cast(Callable[..., Any], target))
    return tuple(processors)


class _BadItem(ValueError):
    """One item of a list setting is invalid: the error quotes the item, not the list."""

    def __init__(self, item: object, reason: str) -> None:
        super().__init__(reason)
        self.item = item


def _sentry_dsn(raw: object) -> str | None:
    dsn = _optional_str(raw)
    if dsn is None or importlib.util.find_spec("sentry_sdk") is None:
        return dsn  # without sentry-sdk nothing is sent (system check otel_django.W003)
    from sentry_sdk.utils import BadDsn, Dsn

    try:
        Dsn(dsn)
    except BadDsn as exc:
        raise ValueError(f"not a Sentry DSN: {exc}") from None
    return dsn


def _regex_tuple(raw: object) -> tuple[str, ...]:
    patterns = _str_tuple(raw)
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None
    return patterns


def _networks(raw: object) -> tuple[Network, ...]:
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in _str_tuple(raw))
    except ValueError as exc:
        raise ValueError(f"expected CIDR networks: {exc}") from None


def _header_name(raw: object) -> str:
    value = _str(raw)
    if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", value):
        raise ValueError("expected an HTTP header name such as X-Request-ID")
    return value


def _resource_attribute(key: str) -> Callable[[Mapping[str, str]], str | None]:
    """Reads one key of OTEL_RESOURCE_ATTRIBUTES (``k=v,k2=v2``)."""

    def read(environ: Mapping[str, str]) -> str | None:
        for pair in environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
            name, sep, value = pair.partition("=")
            if sep and name.strip() == key and value.strip():
                return value.strip()
        return None

    return read


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting: where it is read from, how it is parsed, what it means, which field of
    :class:`Config` holds it (``path``, such as ``traces.exporter``)."""

    name: str
    parse: Callable[[object], Any]
    default: Any
    doc: str
    env: tuple[str, ...] = ()
    derive_env: Callable[[Mapping[str, str]], str | None] | None = None
    secret: bool = False  # the value is never quoted in an error or a warning
    path: str = ""

    @property
    def env_names(self) -> tuple[str, ...]:
        return (*self.env, ENV_PREFIX + self.name)

    @property
    def prefixed_env(self) -> str:
        return ENV_PREFIX + self.name

    def describe(self) -> str:
        return f"{' / '.join(self.env_names)} (OTEL_DJANGO[{self.name!r}])"


def _setting(
    name: str,
    parse: Callable[[object], Any],
    default: Any,
    doc: str,
    env: tuple[str, ...] = (),
    derive_env: Callable[[Mapping[str, str]], str | None] | None = None,
    secret: bool = False,
) -> Any:
    """A field of a configuration group that holds the setting ``name``."""
    setting = Setting(name, parse, default, doc, env, derive_env, secret)
    return dataclasses.field(default=default, metadata={"setting": setting})


def _group(cls: type) -> Any:
    """A field holding a configuration group, its defaults when not given."""
    return dataclasses.field(default_factory=cls, metadata={"group": cls})


@dataclasses.dataclass(frozen=True)
class ServiceConfig:
    """Who emits the telemetry: the resource's service attributes."""

    name: str | None = _setting(
        "SERVICE_NAME",
        _optional_str,
        None,
        "`service.name`, after `OTEL_SERVICE_NAME` and `service.name` in "
        "`OTEL_RESOURCE_ATTRIBUTES`; default: the Django project package, else `django`.",
        env=("OTEL_SERVICE_NAME",),
        derive_env=_resource_attribute("service.name"),
    )
    version: str | None = _setting(
        "SERVICE_VERSION",
        _optional_str,
        None,
        "`service.version`, after `service.version` in `OTEL_RESOURCE_ATTRIBUTES`.",
        derive_env=_resource_attribute("service.version"),
    )
    environment: str | None = _setting(
        "ENVIRONMENT",
        _optional_str,
        None,
        "`deployment.environment.name` (e.g. `production`), after the same key in "
        "`OTEL_RESOURCE_ATTRIBUTES`.",
        derive_env=_resource_attribute("deployment.environment.name"),
    )
    # The Django project package (``mysite`` of ``DJANGO_SETTINGS_MODULE=mysite.settings``),
    # else ``django``: the service name when none is configured (never ``unknown_service``).
    project: str = "django"

    @property
    def resolved_name(self) -> str:
        """``service.name`` as exported: the configured one, else the project package."""
        return self.name or self.project


@dataclasses.dataclass(frozen=True)
class TracesConfig:
    """Span export, sampling, and upstream Django instrumentation's options."""

    exporter: tuple[str, ...] = _setting(
        "TRACES_EXPORTER",
        _name_list,
        ("otlp",),
        "Span exporters, comma-separated: `otlp` (gRPC or HTTP by "
        "`OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`), `console` (one indented tree per request "
        "on stderr), `none`, or any `opentelemetry_traces_exporter` entry point.",
        env=("OTEL_TRACES_EXPORTER",),
    )
    sampler: str = _setting(
        "TRACES_SAMPLER",
        _choice_name,
        "parentbased_traceidratio",
        "Sampler, as `OTEL_TRACES_SAMPLER` names it (an `opentelemetry_traces_sampler` entry "
        "point too). The default follows the caller's decision and samples new traces at "
        "TRACES_SAMPLER_ARG.",
        env=("OTEL_TRACES_SAMPLER",),
    )
    sampler_arg: float = _setting(
        "TRACES_SAMPLER_ARG",
        _float_range(0.0, 1.0),
        1.0,
        "Ratio of new traces sampled, 0 to 1.",
        env=("OTEL_TRACES_SAMPLER_ARG",),
    )
    excluded_urls: tuple[str, ...] = _setting(
        "EXCLUDED_URLS",
        _regex_tuple,
        (),
        "Regular expressions searched in the full URL (`http://host/path`), as upstream's; "
        "matching requests get no span, no request metrics and no access-log line. "
        "otel_django's own views are never traced, wherever they are mounted.",
        env=("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS"),
    )
    traced_request_attrs: tuple[str, ...] = _setting(
        "TRACED_REQUEST_ATTRS",
        _str_tuple,
        (),
        "`HttpRequest` attributes copied onto the server span as strings "
        "(`path_info,content_type`).",
        env=("OTEL_PYTHON_DJANGO_TRACED_REQUEST_ATTRS",),
    )
    capture_headers_server_request: tuple[str, ...] = _setting(
        "CAPTURE_HEADERS_SERVER_REQUEST",
        _regex_tuple,
        (),
        "Request headers recorded as `http.request.header.<name>` (string lists); regular "
        "expressions, `.*` for all.",
        env=("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",),
    )
    capture_headers_server_response: tuple[str, ...] = _setting(
        "CAPTURE_HEADERS_SERVER_RESPONSE",
        _regex_tuple,
        (),
        "Response headers recorded as `http.response.header.<name>`.",
        env=("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE",),
    )
    capture_headers_sanitize_fields: tuple[str, ...] = _setting(
        "CAPTURE_HEADERS_SANITIZE_FIELDS",
        _regex_tuple,
        (),
        "Captured headers whose value is recorded as `[REDACTED]`.",
        env=("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS",),
    )
    request_hook: Callable[..., Any] | None = _setting(
        "REQUEST_HOOK",
        _hook,
        None,
        "`request_hook(span, request)`, called when the server span starts: a callable or "
        "its dotted path. A hook that raises is logged once; the request is unaffected.",
    )
    response_hook: Callable[..., Any] | None = _setting(
        "RESPONSE_HOOK",
        _hook,
        None,
        "`response_hook(span, request, response)`, called before the server span ends.",
    )
    # Whether OTEL_TRACES_SAMPLER named the sampler (a sampler that cannot be served is
    # reported under the variable's name), and OTEL_TRACES_SAMPLER_ARG as given: an
    # ``opentelemetry_traces_sampler`` entry point is called with it, as the SDK does.
    sampler_from_environment: bool = False
    sampler_arg_text: str | None = None


@dataclasses.dataclass(frozen=True)
class MetricsConfig:
    """Metric export, the metrics view and its access, limits and exemplars."""

    exporter: tuple[str, ...] = _setting(
        "METRICS_EXPORTER",
        _name_list,
        ("prometheus",),
        "Metric exporters, comma-separated: `prometheus` (the authenticated metrics view, "
        "pulled), `otlp` (pushed every `OTEL_METRIC_EXPORT_INTERVAL`), `console` (stderr), "
        "`none` (no metrics), or any `opentelemetry_metrics_exporter` entry point.",
        env=("OTEL_METRICS_EXPORTER",),
    )
    enabled: bool = _setting(
        "METRICS_ENABLED", _bool, True, "Collect OTel metrics and serve them at the metrics view."
    )
    username: str = _setting(
        "METRICS_USERNAME", _str, "metrics", "Basic-auth user name for the metrics view."
    )
    password: str | None = _setting(
        "METRICS_PASSWORD",
        _optional_str,
        None,
        "Basic-auth password for the metrics view. With neither it nor METRICS_PASSWORD_FILE "
        "set, the view serves nothing (fail closed).",
    )
    password_file: str | None = _setting(
        "METRICS_PASSWORD_FILE",
        _optional_str,
        None,
        "Path of a file holding the password (a mounted secret); trailing newline ignored.",
    )
    allowed_networks: tuple[Network, ...] = _setting(
        "METRICS_ALLOWED_NETWORKS",
        _networks,
        (),
        "Optional CIDR allowlist of client addresses for the metrics view.",
    )
    multiprocess_dir: str | None = _setting(
        "METRICS_MULTIPROCESS_DIR",
        _optional_str,
        None,
        "Parent of the private directory (one per server) where its workers exchange metric "
        "snapshots, so that every scrape reports all of them. Setting it turns the exchange "
        "on, for workers that detection misses. Default: the temp dir, wherever several "
        "workers are detected (gunicorn, uWSGI, uvicorn and granian workers).",
        env=("PROMETHEUS_MULTIPROC_DIR",),
    )
    cardinality_limit: int = _setting(
        "METRICS_CARDINALITY_LIMIT",
        _int_range(10),
        2000,
        "Distinct attribute sets kept per metric; further ones are counted under "
        "`otel.metric.overflow=true`.",
    )
    exemplar_filter: ExemplarFilter = _setting(
        "METRICS_EXEMPLAR_FILTER",
        _choice("trace_based", "always_on", "always_off"),
        "trace_based",
        "Which measurements of the request and query histograms become exemplars on "
        "/metrics (OpenMetrics only): `trace_based`, those of sampled spans; `always_on`, "
        "of any span; `always_off`, none.",
        env=("OTEL_METRICS_EXEMPLAR_FILTER",),
    )
    # Whether OTEL_METRICS_EXEMPLAR_FILTER is set: then the SDK's own instruments sample
    # exemplars as it says (the SDK reads it); otherwise they sample none.
    sdk_exemplar_filter_set: bool = False


@dataclasses.dataclass(frozen=True)
class DbConfig:
    """Database insight: slow queries, N+1, EXPLAIN, what query spans record."""

    slow_query_ms: float = _setting(
        "SLOW_QUERY_MS", _float_range(0.0), 100.0, "Queries at least this long are marked slow."
    )
    n_plus_one_threshold: int = _setting(
        "N_PLUS_ONE_THRESHOLD",
        _int_range(2),
        5,
        "Same query shape repeated this many times in one request is reported as N+1.",
    )
    explain_enabled: bool = _setting(
        "EXPLAIN_ENABLED",
        _bool,
        False,
        "Attach a plain `EXPLAIN` plan to slow SELECTs (PostgreSQL, SQLite).",
    )
    explain_interval_s: float = _setting(
        "EXPLAIN_INTERVAL_S",
        _float_range(0.0),
        300.0,
        "At most one EXPLAIN per query shape per this many seconds.",
    )
    explain_timeout_ms: float = _setting(
        "EXPLAIN_TIMEOUT_MS", _float_range(1.0), 200.0, "Time budget of one EXPLAIN."
    )
    record_query_parameters: bool = _setting(
        "RECORD_QUERY_PARAMETERS",
        _bool,
        False,
        "Record query parameter values on spans (`db.query.parameter.<n>`). Off: they "
        "may hold personal data.",
    )
    query_text_max_length: int = _setting(
        "QUERY_TEXT_MAX_LENGTH", _int_range(64), 2048, "Cap on `db.query.text` length."
    )
    record_database_error_messages: bool = _setting(
        "RECORD_DATABASE_ERROR_MESSAGES",
        _bool,
        False,
        "Record database errors' messages in span exception events, log lines, OTLP log "
        "records and Sentry events. Off: they quote the failing statement's values, so only "
        "the type, SQLSTATE and frames are recorded.",
    )


@dataclasses.dataclass(frozen=True)
class LoggingConfig:
    """The structlog pipeline, the access log, request ids, log record export."""

    exporter: tuple[str, ...] = _setting(
        "LOGS_EXPORTER",
        _name_list,
        (),
        "Log record exporters besides the stdout lines: `otlp` sends each line as an OTel "
        "log record correlated with its trace; `console` is the stdout lines themselves; "
        "any `opentelemetry_logs_exporter` entry point.",
        env=("OTEL_LOGS_EXPORTER",),
    )
    enabled: bool = _setting(
        "LOGGING_ENABLED",
        _bool,
        True,
        "Let otel_django configure structlog and stdlib logging. Off: your LOGGING stays as is.",
    )
    format: LogFormat = _setting(
        "LOG_FORMAT",
        _choice("json", "console"),
        "json",
        "`json`: one JSON object per line on stdout; `console`: coloured, for development.",
    )
    level: LogLevel = _setting(
        "LOG_LEVEL",
        _choice("debug", "info", "warning", "error", "critical"),
        "info",
        "Root log level.",
    )
    request_id_header: str = _setting(
        "REQUEST_ID_HEADER",
        _header_name,
        "X-Request-ID",
        "Incoming header whose value is used as request id when safe; echoed in the response.",
    )
    access_log: bool = _setting("ACCESS_LOG", _bool, True, "One access-log line per request.")
    slow_request_ms: float = _setting(
        "SLOW_REQUEST_MS", _float_range(0.0), 1000.0, "Requests at least this long log at warning."
    )
    log_user_id: bool = _setting(
        "LOG_USER_ID", _bool, False, "Add the authenticated user's id to access-log lines."
    )
    redact_keys: tuple[str, ...] = _setting(
        "REDACT_KEYS",
        _str_tuple,
        (),
        "Extra key fragments whose values are redacted in logs and span attributes.",
    )
    processors: tuple[Callable[..., Any], ...] = _setting(
        "LOG_PROCESSORS",
        _processors,
        (),
        "Dotted paths of extra structlog processors, run on every line (structlog and "
        "stdlib) before redaction and rendering; a class is instantiated without arguments.",
    )
    # NO_COLOR (https://no-color.org): the console format prints without colours.
    no_color: bool = False


@dataclasses.dataclass(frozen=True)
class SentryConfig:
    dsn: str | None = _setting(
        "SENTRY_DSN",
        _sentry_dsn,
        None,
        "Sentry DSN; when set and sentry-sdk is installed, errors go to Sentry linked to traces.",
        env=("SENTRY_DSN",),
        secret=True,
    )


@dataclasses.dataclass(frozen=True)
class HealthConfig:
    """The readiness probe's checks."""

    timeout_s: float = _setting(
        "HEALTH_CHECK_TIMEOUT_S",
        _float_range(0.05, 60.0),
        2.0,
        "Time budget of each readiness check.",
    )
    migrations: bool = _setting(
        "HEALTH_CHECK_MIGRATIONS", _bool, True, "Readiness fails while migrations are unapplied."
    )
    redis_url: str | None = _setting(
        "HEALTH_CHECK_REDIS_URL", _optional_str, None, "Redis URL checked by readiness, if any."
    )


@dataclasses.dataclass(frozen=True)
class Config:
    """Validated settings, by concern. Build it with :func:`load_config`; never mutate it
    (:meth:`replace` gives a changed copy)."""

    sdk_disabled: bool = _setting(
        "SDK_DISABLED",
        _bool,
        False,
        "Switch the OpenTelemetry side off: no providers, no middleware, no instrumentation, "
        "no request metrics; the application runs as if otel_django were absent (JSON "
        "logging, if on, stays).",
        env=("OTEL_SDK_DISABLED",),
    )
    prefork: Prefork = _setting(
        "PREFORK",
        _prefork,
        Prefork.AUTO,
        "Whether the process that loads the app then forks the workers: each worker creates "
        "its own providers and the workers' metrics are merged. `auto` detects gunicorn "
        "`--preload` and uWSGI without `--lazy-apps`; `true` for another pre-fork server; "
        "`false` creates them where the app loads (forked workers share them). A process "
        "that waits for a fork and serves a request instead sets up then, with a warning.",
    )
    telemetry_in_tests: bool = _setting(
        "TELEMETRY_IN_TESTS",
        _bool,
        False,
        "Under Django's test runner and pytest, otel_django exports nothing, writes no "
        "access lines and leaves logging alone; true keeps everything on, for tests that "
        "assert on telemetry.",
    )
    trust_x_forwarded_for: bool = _setting(
        "TRUST_X_FORWARDED_FOR",
        _bool,
        False,
        "Take the client address from X-Forwarded-For (set only behind a proxy that "
        "overwrites it); used by the allowlist and the access log.",
    )
    service: ServiceConfig = _group(ServiceConfig)
    traces: TracesConfig = _group(TracesConfig)
    metrics: MetricsConfig = _group(MetricsConfig)
    db: DbConfig = _group(DbConfig)
    logging: LoggingConfig = _group(LoggingConfig)
    sentry: SentryConfig = _group(SentryConfig)
    health: HealthConfig = _group(HealthConfig)
    # OTEL_PYTHON_DISABLED_INSTRUMENTATIONS, as the wrapper reads it: instrumentors that setup
    # does not apply (``*``: none).
    disabled_instrumentations: frozenset[str] = frozenset()
    # The exporters' own variables that otel_django looks at to choose and build them
    # (:data:`EXPORTER_INPUTS`, those set): OTLP protocols, batch queue sizes.
    exporter_variables: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # Which settings came from the Django settings dict (for the system checks).
    from_settings: frozenset[str] = frozenset()
    # Standard variables whose value was ignored, one message each (logged at startup).
    warnings: tuple[str, ...] = ()

    @property
    def metrics_on(self) -> bool:
        """Whether otel_django records metrics at all."""
        return self.metrics.enabled and not self.sdk_disabled and bool(self.metrics.exporter)

    @property
    def metrics_pulled(self) -> bool:
        """Whether the metrics view serves this process's metrics (``prometheus``)."""
        return self.metrics_on and "prometheus" in self.metrics.exporter

    @property
    def logs_exported(self) -> bool:
        """Whether log lines are also sent as OTel log records (``console`` is stdout itself)."""
        return not self.sdk_disabled and any(name != "console" for name in self.logging.exporter)

    def replace(self, **changes: Any) -> Config:
        """A copy with the named settings changed: ``config.replace(SLOW_QUERY_MS=0)``
        (names as in ``OTEL_DJANGO``, any case; values already parsed, not validated)."""
        by_group: dict[str, dict[str, Any]] = {}
        top: dict[str, Any] = {}
        for name, value in changes.items():
            setting = _BY_NAME.get(name.upper())
            if setting is None:
                raise TypeError(f"no setting {name}")
            group, _, field = setting.path.rpartition(".")
            (by_group.setdefault(group, {}) if group else top)[field] = value
        for group, fields in by_group.items():
            top[group] = dataclasses.replace(getattr(self, group), **fields)
        return dataclasses.replace(self, **top)


def _settings_of(cls: type, prefix: str = "") -> Iterator[Setting]:
    for field in dataclasses.fields(cls):
        if "setting" in field.metadata:
            yield dataclasses.replace(field.metadata["setting"], path=prefix + field.name)
        elif "group" in field.metadata:
            yield from _settings_of(field.metadata["group"], f"{prefix}{field.name}.")


SETTINGS: tuple[Setting, ...] = tuple(_settings_of(Config))
_BY_NAME = {s.name: s for s in SETTINGS}


def load_config(
    environ: Mapping[str, str] | None = None,
    settings_dict: Mapping[str, Any] | None = None,
) -> Config:
    """Builds the configuration from the environment and the ``OTEL_DJANGO`` settings dict.

    Raises :class:`ConfigError` naming the first setting whose value is invalid.
    """
    environ = os.environ if environ is None else environ
    settings_dict = settings_dict or {}
    if not isinstance(settings_dict, Mapping):
        raise ConfigError(Setting("OTEL_DJANGO", _str, None, ""), settings_dict, "expected a dict")
    unknown = sorted(set(settings_dict) - set(_BY_NAME))
    if unknown:
        setting = Setting(unknown[0], _str, None, "")
        raise ConfigError(setting, settings_dict[unknown[0]], "unknown setting")

    values: dict[str, Any] = {}
    from_settings: set[str] = set()
    warnings: list[str] = []
    for setting in SETTINGS:
        found, value = _read(setting, environ, settings_dict, warnings)
        if found is None:
            continue
        if found == "settings":
            from_settings.add(setting.name)
        values[setting.path] = value
    # Inputs that are not settings of their own, read here all the same.
    module = environ.get("DJANGO_SETTINGS_MODULE", "")
    values["service.project"] = module.split(".", 1)[0] or "django"
    values["traces.sampler_from_environment"] = bool(environ.get("OTEL_TRACES_SAMPLER"))
    values["traces.sampler_arg_text"] = environ.get("OTEL_TRACES_SAMPLER_ARG")
    values["metrics.sdk_exemplar_filter_set"] = bool(environ.get("OTEL_METRICS_EXEMPLAR_FILTER"))
    values["logging.no_color"] = "NO_COLOR" in environ
    disabled = environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")
    values["disabled_instrumentations"] = frozenset(n.strip() for n in disabled if n.strip())
    values["exporter_variables"] = {n: environ[n] for n in EXPORTER_INPUTS if n in environ}
    if environ.get("OTEL_CONFIG_FILE", "").strip():
        warnings.append(
            "OTEL_CONFIG_FILE is ignored: otel_django is configured by the OTEL_* variables "
            "and the OTEL_DJANGO settings, not by a declarative configuration file"
        )
    config: Config = _build(
        Config, values, "", from_settings=frozenset(from_settings), warnings=tuple(warnings)
    )
    return config


def _read(
    setting: Setting,
    environ: Mapping[str, str],
    settings_dict: Mapping[str, Any],
    warnings: list[str],
) -> tuple[str | None, Any]:
    """``(where it was found, value)``; ``(None, None)`` when unset (the default applies)."""

    def shown(raw: object) -> object:
        return "<hidden>" if setting.secret else raw

    # Standard variables first. The spec's rule for a value that cannot be used: warn and treat
    # the variable as unset, so the next source counts.
    for env_name in setting.env:
        raw = environ.get(env_name, "")
        if raw.strip():
            try:
                return "environment", setting.parse(raw)
            except ValueError as exc:
                warnings.append(f"{env_name}={shown(raw)!r} is ignored: {exc}")
            break
    if setting.derive_env is not None:
        derived = setting.derive_env(environ)
        if derived is not None:
            try:
                return "environment", setting.parse(derived)
            except ValueError as exc:
                warnings.append(f"OTEL_RESOURCE_ATTRIBUTES: {shown(derived)!r} is ignored: {exc}")
    # otel_django's own sources: a value it cannot use is an error (otel_django.E001).
    if environ.get(setting.prefixed_env, "").strip():
        raw_value: object = environ[setting.prefixed_env]
        where, found = setting.prefixed_env, "environment"
    elif setting.name in settings_dict:
        raw_value = settings_dict[setting.name]
        where, found = f"OTEL_DJANGO[{setting.name!r}]", "settings"
    else:
        return None, None
    try:
        return found, setting.parse(raw_value)
    except _BadItem as exc:
        raise ConfigError(setting, exc.item, str(exc), where) from None
    except ValueError as exc:
        raise ConfigError(setting, raw_value, str(exc), where) from None


def _build(cls: type, values: Mapping[str, Any], prefix: str, **extra: Any) -> Any:
    kwargs: dict[str, Any] = dict(extra)
    for field in dataclasses.fields(cls):
        path = prefix + field.name
        if "group" in field.metadata:
            kwargs[field.name] = _build(field.metadata["group"], values, path + ".")
        elif path in values:
            kwargs[field.name] = values[path]
    return cls(**kwargs)


def disabled_config(environ: Mapping[str, str] | None = None) -> Config:
    """The configuration otel_django runs with when the real one is invalid: telemetry off."""
    module = (os.environ if environ is None else environ).get("DJANGO_SETTINGS_MODULE", "")
    return load_config({"DJANGO_SETTINGS_MODULE": module}, {}).replace(SDK_DISABLED=True)


def sdk_disabled(environ: Mapping[str, str]) -> bool:
    """``OTEL_SDK_DISABLED`` alone, for the wrapper's distro (before Django settings exist)."""
    try:
        return _bool(environ.get("OTEL_SDK_DISABLED", ""))
    except ValueError:
        return False
