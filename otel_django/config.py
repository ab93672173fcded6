"""The one validated configuration object of otel_django.

Every setting is read here, once, and nowhere else. Sources, highest precedence first:

1. the standard variable where one exists (``OTEL_SERVICE_NAME``, ``OTEL_TRACES_EXPORTER``
   ...), then the key of ``OTEL_RESOURCE_ATTRIBUTES`` for resource settings;
2. the ``OTEL_DJANGO_<NAME>`` environment variable;
3. the ``OTEL_DJANGO = {"<NAME>": ...}`` dict in Django settings;
4. the default.

A standard variable whose value cannot be used is ignored with a warning, as the
OpenTelemetry specification asks; an invalid value of otel_django's own (2. or 3.) is a
:class:`ConfigError`. Variables that only the SDK and the exporters read
(``OTEL_EXPORTER_OTLP_*``, ``OTEL_BSP_*``, ``OTEL_BLRP_*``, ``OTEL_METRIC_EXPORT_*`` ...) are
not read here: the exporters and processors are built without arguments and read them
themselves.

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

__all__ = [
    "SETTINGS",
    "Config",
    "ConfigError",
    "Setting",
    "disabled_config",
    "load_config",
    "sdk_disabled",
]

ENV_PREFIX = "OTEL_DJANGO_"


class ConfigError(ValueError):
    """A setting has a value otel_django cannot use. The message names the setting."""

    def __init__(
        self, setting: Setting, value: object, reason: str, where: str | None = None
    ) -> None:
        self.setting = setting
        self.value = value
        super().__init__(f"{where or setting.describe()}: {reason} (got {value!r})")


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


def _hook(raw: object) -> Callable[..., Any] | None:
    """A callable, or the dotted path of one (``package.module.function``)."""
    if raw is None or callable(raw):
        return raw
    path = _str(raw)
    if not path:
        return None
    import importlib

    module_name, _, attribute = path.replace(":", ".").rpartition(".")
    if not module_name:
        raise ValueError("expected a callable or a dotted path such as mysite.telemetry.hook")
    try:
        value = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import {path}: {exc}") from None
    if not callable(value):
        raise ValueError(f"{path} is not callable")
    return value  # type: ignore[no-any-return]


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

    @property
    def prefixed_env(self) -> str:
        return ENV_PREFIX + self.name

    def describe(self) -> str:
        return f"{' / '.join(self.env_names)} (OTEL_DJANGO[{self.name!r}])"


SETTINGS: tuple[Setting, ...] = (
    # -- resource and providers
    Setting(
        "SDK_DISABLED",
        _bool,
        False,
        "Switch the OpenTelemetry side off: no providers, no middleware, no instrumentation, "
        "no request metrics; the application runs as if otel_django were absent (JSON "
        "logging, if on, stays).",
        env=("OTEL_SDK_DISABLED",),
    ),
    Setting(
        "SERVICE_NAME",
        _optional_str,
        None,
        "`service.name`, after `OTEL_SERVICE_NAME` and `service.name` in "
        "`OTEL_RESOURCE_ATTRIBUTES`; default: the Django project package, else `django`.",
        env=("OTEL_SERVICE_NAME",),
        derive_env=_resource_attribute("service.name"),
    ),
    Setting(
        "SERVICE_VERSION",
        _optional_str,
        None,
        "`service.version`, after `service.version` in `OTEL_RESOURCE_ATTRIBUTES`.",
        derive_env=_resource_attribute("service.version"),
    ),
    Setting(
        "ENVIRONMENT",
        _optional_str,
        None,
        "`deployment.environment.name` (e.g. `production`), after the same key in "
        "`OTEL_RESOURCE_ATTRIBUTES`.",
        derive_env=_resource_attribute("deployment.environment.name"),
    ),
    Setting(
        "TRACES_EXPORTER",
        _name_list,
        ("otlp",),
        "Span exporters, comma-separated: `otlp` (gRPC or HTTP by "
        "`OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`), `console` (one indented tree per request "
        "on stderr), `none`, or any `opentelemetry_traces_exporter` entry point.",
        env=("OTEL_TRACES_EXPORTER",),
    ),
    Setting(
        "METRICS_EXPORTER",
        _name_list,
        ("prometheus",),
        "Metric exporters, comma-separated: `prometheus` (the authenticated metrics view, "
        "pulled), `otlp` (pushed every `OTEL_METRIC_EXPORT_INTERVAL`), `console` (stderr), "
        "`none` (no metrics), or any `opentelemetry_metrics_exporter` entry point.",
        env=("OTEL_METRICS_EXPORTER",),
    ),
    Setting(
        "LOGS_EXPORTER",
        _name_list,
        (),
        "Log record exporters besides the stdout lines: `otlp` sends each line as an OTel "
        "log record correlated with its trace; `console` is the stdout lines themselves; "
        "any `opentelemetry_logs_exporter` entry point.",
        env=("OTEL_LOGS_EXPORTER",),
    ),
    Setting(
        "TRACES_SAMPLER",
        _choice_name,
        "parentbased_traceidratio",
        "Sampler, as `OTEL_TRACES_SAMPLER` names it (an `opentelemetry_traces_sampler` entry "
        "point too). The default follows the caller's decision and samples new traces at "
        "TRACES_SAMPLER_ARG.",
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
        "PREFORK",
        _choice("auto", "true", "false"),
        "auto",
        "Whether the process that loads the app then forks the workers: each worker creates "
        "its own providers and the workers' metrics are merged. `auto` detects gunicorn "
        "`--preload` and uWSGI without `--lazy-apps`; `true` for another pre-fork server; "
        "`false` creates them where the app loads (forked workers share them). A process "
        "that waits for a fork and serves a request instead sets up then, with a warning.",
    ),
    Setting(
        "TELEMETRY_IN_TESTS",
        _bool,
        False,
        "Under Django's test runner and pytest, otel_django exports nothing, writes no "
        "access lines and leaves logging alone; true keeps everything on, for tests that "
        "assert on telemetry.",
    ),
    # -- traces: upstream Django instrumentation's options
    Setting(
        "EXCLUDED_URLS",
        _regex_tuple,
        (),
        "Regular expressions searched in the full URL (`http://host/path`), as upstream's; "
        "matching requests get no span, no request metrics and no access-log line. "
        "otel_django's own views are never traced, wherever they are mounted.",
        env=("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS"),
    ),
    Setting(
        "TRACED_REQUEST_ATTRS",
        _str_tuple,
        (),
        "`HttpRequest` attributes copied onto the server span as strings "
        "(`path_info,content_type`).",
        env=("OTEL_PYTHON_DJANGO_TRACED_REQUEST_ATTRS",),
    ),
    Setting(
        "CAPTURE_HEADERS_SERVER_REQUEST",
        _regex_tuple,
        (),
        "Request headers recorded as `http.request.header.<name>` (string lists); regular "
        "expressions, `.*` for all.",
        env=("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST",),
    ),
    Setting(
        "CAPTURE_HEADERS_SERVER_RESPONSE",
        _regex_tuple,
        (),
        "Response headers recorded as `http.response.header.<name>`.",
        env=("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE",),
    ),
    Setting(
        "CAPTURE_HEADERS_SANITIZE_FIELDS",
        _regex_tuple,
        (),
        "Captured headers whose value is recorded as `[REDACTED]`.",
        env=("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS",),
    ),
    Setting(
        "REQUEST_HOOK",
        _hook,
        None,
        "`request_hook(span, request)`, called when the server span starts: a callable or "
        "its dotted path. A hook that raises is logged once; the request is unaffected.",
    ),
    Setting(
        "RESPONSE_HOOK",
        _hook,
        None,
        "`response_hook(span, request, response)`, called before the server span ends.",
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
    Setting(
        "METRICS_EXEMPLAR_FILTER",
        _choice("trace_based", "always_on", "always_off"),
        "trace_based",
        "Which measurements of the request and query histograms become exemplars on "
        "/metrics (OpenMetrics only): `trace_based`, those of sampled spans; `always_on`, "
        "of any span; `always_off`, none.",
        env=("OTEL_METRICS_EXEMPLAR_FILTER",),
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
    Setting(
        "RECORD_DATABASE_ERROR_MESSAGES",
        _bool,
        False,
        "Record database errors' messages in span exception events, log lines, OTLP log "
        "records and Sentry events. Off: they quote the failing statement's values, so only "
        "the type, SQLSTATE and frames are recorded.",
    ),
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

    sdk_disabled: bool
    service_name: str | None
    service_version: str | None
    environment: str | None
    traces_exporter: tuple[str, ...]
    metrics_exporter: tuple[str, ...]
    logs_exporter: tuple[str, ...]
    traces_sampler: str
    traces_sampler_arg: float
    prefork: str
    telemetry_in_tests: bool
    excluded_urls: tuple[str, ...]
    traced_request_attrs: tuple[str, ...]
    capture_headers_server_request: tuple[str, ...]
    capture_headers_server_response: tuple[str, ...]
    capture_headers_sanitize_fields: tuple[str, ...]
    request_hook: Callable[..., Any] | None
    response_hook: Callable[..., Any] | None
    metrics_enabled: bool
    metrics_username: str
    metrics_password: str | None
    metrics_password_file: str | None
    metrics_allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    trust_x_forwarded_for: bool
    metrics_multiprocess_dir: str | None
    metrics_cardinality_limit: int
    metrics_exemplar_filter: str
    slow_query_ms: float
    n_plus_one_threshold: int
    explain_enabled: bool
    explain_interval_s: float
    explain_timeout_ms: float
    record_query_parameters: bool
    query_text_max_length: int
    record_database_error_messages: bool
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
    # Standard variables whose value was ignored, one message each (logged at startup).
    warnings: tuple[str, ...] = ()

    @property
    def metrics_pulled(self) -> bool:
        """Whether the metrics view serves this process's metrics (``prometheus``)."""
        return self.metrics_on and "prometheus" in self.metrics_exporter

    @property
    def logs_exported(self) -> bool:
        """Whether log lines are also sent as OTel log records (``console`` is stdout itself)."""
        return not self.sdk_disabled and any(name != "console" for name in self.logs_exporter)

    @property
    def metrics_on(self) -> bool:
        """Whether otel_django records metrics at all."""
        return self.metrics_enabled and not self.sdk_disabled and bool(self.metrics_exporter)


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
        found, value = False, None
        # Standard variables first. The spec's rule for a value that cannot be used: warn and
        # treat the variable as unset, so the next source counts.
        for env_name in setting.env:
            raw = environ.get(env_name, "")
            if raw.strip():
                try:
                    found, value = True, setting.parse(raw)
                except ValueError as exc:
                    warnings.append(f"{env_name}={raw!r} is ignored: {exc}")
                break
        if not found and setting.derive_env is not None:
            derived = setting.derive_env(environ)
            if derived is not None:
                try:
                    found, value = True, setting.parse(derived)
                except ValueError as exc:
                    warnings.append(f"OTEL_RESOURCE_ATTRIBUTES: {derived!r} is ignored: {exc}")
        # otel_django's own sources: a value it cannot use is an error (otel_django.E001).
        sources: list[tuple[object, bool]] = []
        if not found and environ.get(setting.prefixed_env, "").strip():
            sources.append((environ[setting.prefixed_env], False))
        elif not found and setting.name in settings_dict:
            sources.append((settings_dict[setting.name], True))
        for raw_value, in_settings in sources:
            try:
                found, value = True, setting.parse(raw_value)
            except ValueError as exc:
                where = f"OTEL_DJANGO[{setting.name!r}]" if in_settings else setting.prefixed_env
                raise ConfigError(setting, raw_value, str(exc), where) from None
            if in_settings:
                from_settings.add(setting.name)
        values[setting.name.lower()] = value if found else setting.default
    if environ.get("OTEL_CONFIG_FILE", "").strip():
        warnings.append(
            "OTEL_CONFIG_FILE is ignored: otel_django is configured by the OTEL_* variables "
            "and the OTEL_DJANGO settings, not by a declarative configuration file"
        )
    return Config(**values, from_settings=frozenset(from_settings), warnings=tuple(warnings))


def disabled_config() -> Config:
    """The configuration otel_django runs with when the real one is invalid: telemetry off."""
    return dataclasses.replace(load_config({}, {}), sdk_disabled=True)


def sdk_disabled(environ: Mapping[str, str]) -> bool:
    """``OTEL_SDK_DISABLED`` alone, for the wrapper's distro (before Django settings exist)."""
    try:
        return _bool(environ.get("OTEL_SDK_DISABLED", ""))
    except ValueError:
        return False
