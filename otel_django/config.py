"""The one validated configuration object of otel_django.

Every setting is read here, once, and nowhere else. Sources, highest precedence first:

1. the standard ``OTEL_*`` variable where one exists (``OTEL_SERVICE_NAME``,
   ``OTEL_TRACES_EXPORTER`` ...), then the ``OTEL_DJANGO_<NAME>`` environment variable;
2. the ``OTEL_DJANGO = {"<NAME>": ...}`` dict in Django settings;
3. the default.

This module never imports Django settings: callers pass the settings dict in, so the
``opentelemetry-instrument`` wrapper can build a configuration before Django is configured.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["SETTINGS", "Config", "ConfigError", "Setting", "load_config"]

ENV_PREFIX = "OTEL_DJANGO_"


class ConfigError(ValueError):
    """A setting has a value otel_django cannot use. The message names the setting."""

    def __init__(self, setting: Setting, value: object, reason: str) -> None:
        self.setting = setting
        self.value = value
        super().__init__(f"{setting.describe()}: {reason} (got {value!r})")


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


def _choice(*choices: str) -> Callable[[object], str]:
    def parse(raw: object) -> str:
        value = _str(raw).lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return parse


def _str_tuple(raw: object) -> tuple[str, ...]:
    if isinstance(raw, str):
        items: Sequence[object] = raw.split(",")
    elif isinstance(raw, (list, tuple)):
        items = raw
    else:
        raise ValueError("expected a comma-separated string or a list of strings")
    return tuple(s for s in (_str(i) for i in items) if s)


def _regex_tuple(raw: object) -> tuple[str, ...]:
    patterns = _str_tuple(raw)
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None
    return patterns


def _networks(raw: object) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
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
    """One setting: where it is read from, how it is parsed, what it means."""

    name: str
    parse: Callable[[object], Any]
    default: Any
    doc: str
    env: tuple[str, ...] = ()
    derive_env: Callable[[Mapping[str, str]], str | None] | None = None

    @property
    def env_names(self) -> tuple[str, ...]:
        return (*self.env, ENV_PREFIX + self.name)

    def describe(self) -> str:
        return f"{' / '.join(self.env_names)} (OTEL_DJANGO[{self.name!r}])"


_PATHS_NOT_TRACED = (r"^/metrics/?$", r"^/healthz/?$", r"^/readyz/?$")

SETTINGS: tuple[Setting, ...] = (
    # -- resource and providers
    Setting(
        "SERVICE_NAME",
        _optional_str,
        None,
        "`service.name`; default: the Django project package, else `django`.",
        env=("OTEL_SERVICE_NAME",),
    ),
    Setting(
        "SERVICE_VERSION",
        _optional_str,
        None,
        "`service.version`.",
        derive_env=_resource_attribute("service.version"),
    ),
    Setting(
        "ENVIRONMENT",
        _optional_str,
        None,
        "`deployment.environment.name` (e.g. `production`).",
        derive_env=_resource_attribute("deployment.environment.name"),
    ),
    Setting(
        "TRACES_EXPORTER",
        _choice("otlp", "console", "none"),
        "otlp",
        "Where spans go: `otlp` (OTLP/HTTP protobuf), `console` (one indented tree per "
        "request on stderr) or `none`.",
        env=("OTEL_TRACES_EXPORTER",),
    ),
    Setting(
        "OTLP_ENDPOINT",
        _str,
        "http://localhost:4318",
        "Base URL of the OTLP/HTTP receiver (a Collector); `/v1/traces`, `/v1/logs` are appended.",
        env=("OTEL_EXPORTER_OTLP_ENDPOINT",),
    ),
    Setting(
        "TRACES_SAMPLER",
        _choice(
            "parentbased_traceidratio",
            "parentbased_always_on",
            "parentbased_always_off",
            "traceidratio",
            "always_on",
            "always_off",
        ),
        "parentbased_traceidratio",
        "Sampler, as the standard variable names it. The default follows the caller's "
        "decision and samples new traces at TRACES_SAMPLER_ARG.",
        env=("OTEL_TRACES_SAMPLER",),
    ),
    Setting(
        "TRACES_SAMPLER_ARG",
        _float_range(0.0, 1.0),
        1.0,
        "Ratio of new traces sampled, 0 to 1.",
        env=("OTEL_TRACES_SAMPLER_ARG",),
    ),
    Setting(
        "SPAN_QUEUE_SIZE",
        _int_range(1),
        2048,
        "Spans kept in memory while the exporter is slow or down; beyond it new spans "
        "are dropped, never the request.",
        env=("OTEL_BSP_MAX_QUEUE_SIZE",),
    ),
    Setting(
        "LOGS_EXPORTER",
        _choice("none", "otlp"),
        "none",
        "`otlp` also sends log records over OTLP, correlated with traces; stdout keeps "
        "its lines either way.",
        env=("OTEL_LOGS_EXPORTER",),
    ),
    Setting(
        "PREFORK",
        _choice("auto", "true", "false"),
        "auto",
        "Whether the process that loads the app then forks the workers: each worker creates "
        "its own providers and the workers' metrics are merged. `auto` detects gunicorn "
        "`--preload` and uWSGI without `--lazy-apps`; `true` for another pre-fork server; "
        "`false` creates them where the app loads (forked workers share them). A process "
        "that waits for a fork and serves a request instead sets up then, with a warning.",
    ),
    # -- traces
    Setting(
        "EXCLUDED_URLS",
        _regex_tuple,
        _PATHS_NOT_TRACED,
        "Regular expressions searched in the request path; matching requests get no "
        "span, no request metrics and no access-log line.",
        env=("OTEL_PYTHON_DJANGO_EXCLUDED_URLS",),
    ),
    # -- metrics
    Setting(
        "METRICS_ENABLED", _bool, True, "Collect OTel metrics and serve them at the metrics view."
    ),
    Setting("METRICS_USERNAME", _str, "metrics", "Basic-auth user name for the metrics view."),
    Setting(
        "METRICS_PASSWORD",
        _optional_str,
        None,
        "Basic-auth password for the metrics view. With neither it nor METRICS_PASSWORD_FILE "
        "set, the view serves nothing (fail closed).",
    ),
    Setting(
        "METRICS_PASSWORD_FILE",
        _optional_str,
        None,
        "Path of a file holding the password (a mounted secret); trailing newline ignored.",
    ),
    Setting(
        "METRICS_ALLOWED_NETWORKS",
        _networks,
        (),
        "Optional CIDR allowlist of client addresses for the metrics view.",
    ),
    Setting(
        "TRUST_X_FORWARDED_FOR",
        _bool,
        False,
        "Take the client address from X-Forwarded-For (set only behind a proxy that "
        "overwrites it); used by the allowlist and the access log.",
    ),
    Setting(
        "METRICS_MULTIPROCESS_DIR",
        _optional_str,
        None,
        "Parent of the private directory (one per server) where its workers exchange metric "
        "snapshots, so that every scrape reports all of them. Setting it turns the exchange "
        "on, for workers that detection misses. Default: the temp dir, wherever several "
        "workers are detected (gunicorn, uWSGI, uvicorn and granian workers).",
        env=("PROMETHEUS_MULTIPROC_DIR",),
    ),
    Setting(
        "METRICS_CARDINALITY_LIMIT",
        _int_range(10),
        2000,
        "Distinct attribute sets kept per metric; further ones are counted under "
        "`otel.metric.overflow=true`.",
    ),
    # -- database insight
    Setting(
        "SLOW_QUERY_MS", _float_range(0.0), 100.0, "Queries at least this long are marked slow."
    ),
    Setting(
        "N_PLUS_ONE_THRESHOLD",
        _int_range(2),
        5,
        "Same query shape repeated this many times in one request is reported as N+1.",
    ),
    Setting(
        "EXPLAIN_ENABLED",
        _bool,
        False,
        "Attach a plain `EXPLAIN` plan to slow SELECTs (PostgreSQL, SQLite).",
    ),
    Setting(
        "EXPLAIN_INTERVAL_S",
        _float_range(0.0),
        300.0,
        "At most one EXPLAIN per query shape per this many seconds.",
    ),
    Setting("EXPLAIN_TIMEOUT_MS", _float_range(1.0), 200.0, "Time budget of one EXPLAIN."),
    Setting(
        "RECORD_QUERY_PARAMETERS",
        _bool,
        False,
        "Record query parameter values on spans (`db.query.parameter.<n>`). Off: they "
        "may hold personal data.",
    ),
    Setting("QUERY_TEXT_MAX_LENGTH", _int_range(64), 2048, "Cap on `db.query.text` length."),
    # -- logs
    Setting(
        "LOGGING_ENABLED",
        _bool,
        True,
        "Let otel_django configure structlog and stdlib logging. Off: your LOGGING stays as is.",
    ),
    Setting(
        "LOG_FORMAT",
        _choice("json", "console"),
        "json",
        "`json`: one JSON object per line on stdout; `console`: coloured, for development.",
    ),
    Setting(
        "LOG_LEVEL",
        _choice("debug", "info", "warning", "error", "critical"),
        "info",
        "Root log level.",
    ),
    Setting(
        "REQUEST_ID_HEADER",
        _header_name,
        "X-Request-ID",
        "Incoming header whose value is used as request id when safe; echoed in the response.",
    ),
    Setting("ACCESS_LOG", _bool, True, "One access-log line per request."),
    Setting(
        "SLOW_REQUEST_MS", _float_range(0.0), 1000.0, "Requests at least this long log at warning."
    ),
    Setting("LOG_USER_ID", _bool, False, "Add the authenticated user's id to access-log lines."),
    Setting(
        "REDACT_KEYS",
        _str_tuple,
        (),
        "Extra key fragments whose values are redacted in logs and span attributes.",
    ),
    Setting(
        "LOG_PROCESSORS",
        _str_tuple,
        (),
        "Dotted paths of extra structlog processors, run on every line (structlog and "
        "stdlib) before redaction and rendering; a class is instantiated without arguments.",
    ),
    # -- errors
    Setting(
        "SENTRY_DSN",
        _optional_str,
        None,
        "Sentry DSN; when set and sentry-sdk is installed, errors go to Sentry linked to traces.",
        env=("SENTRY_DSN",),
    ),
    # -- health
    Setting(
        "HEALTH_CHECK_TIMEOUT_S",
        _float_range(0.05, 60.0),
        2.0,
        "Time budget of each readiness check.",
    ),
    Setting(
        "HEALTH_CHECK_MIGRATIONS", _bool, True, "Readiness fails while migrations are unapplied."
    ),
    Setting(
        "HEALTH_CHECK_REDIS_URL", _optional_str, None, "Redis URL checked by readiness, if any."
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


@dataclasses.dataclass(frozen=True)
class Config:
    """Validated settings. Build it with :func:`load_config`; never mutate it."""

    service_name: str | None
    service_version: str | None
    environment: str | None
    traces_exporter: str
    otlp_endpoint: str
    traces_sampler: str
    traces_sampler_arg: float
    span_queue_size: int
    logs_exporter: str
    prefork: str
    excluded_urls: tuple[str, ...]
    metrics_enabled: bool
    metrics_username: str
    metrics_password: str | None
    metrics_password_file: str | None
    metrics_allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    trust_x_forwarded_for: bool
    metrics_multiprocess_dir: str | None
    metrics_cardinality_limit: int
    slow_query_ms: float
    n_plus_one_threshold: int
    explain_enabled: bool
    explain_interval_s: float
    explain_timeout_ms: float
    record_query_parameters: bool
    query_text_max_length: int
    logging_enabled: bool
    log_format: str
    log_level: str
    request_id_header: str
    access_log: bool
    slow_request_ms: float
    log_user_id: bool
    redact_keys: tuple[str, ...]
    log_processors: tuple[str, ...]
    sentry_dsn: str | None
    health_check_timeout_s: float
    health_check_migrations: bool
    health_check_redis_url: str | None
    # Which settings came from the Django settings dict (for the system checks).
    from_settings: frozenset[str] = frozenset()

    @property
    def excluded_urls_regex(self) -> re.Pattern[str] | None:
        if not self.excluded_urls:
            return None
        return re.compile("|".join(f"(?:{p})" for p in self.excluded_urls))


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
    for setting in SETTINGS:
        raw: object = None
        found = False
        for env_name in setting.env_names:
            if environ.get(env_name, "").strip():
                raw, found = environ[env_name], True
                break
        if not found and setting.derive_env is not None:
            derived = setting.derive_env(environ)
            if derived is not None:
                raw, found = derived, True
        if not found and setting.name in settings_dict:
            raw, found = settings_dict[setting.name], True
            from_settings.add(setting.name)
        if not found:
            values[setting.name.lower()] = setting.default
            continue
        try:
            values[setting.name.lower()] = setting.parse(raw)
        except ValueError as exc:
            raise ConfigError(setting, raw, str(exc)) from None
    return Config(**values, from_settings=frozenset(from_settings))
