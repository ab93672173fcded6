"""The process's one runtime object: built once, from the code path startup uses, and shared by
what Django constructs (middleware, views, system checks)."""

from __future__ import annotations

import dataclasses
import os

import pytest
from django.test import Client, override_settings

from otel_django import runtime
from otel_django.config import ConfigError
from otel_django.middleware import OtelDjangoMiddleware

pytestmark = pytest.mark.smoke


def test_one_runtime_per_process_set_up_by_startup() -> None:
    live = runtime.current()
    assert runtime.current() is live
    assert live.lifecycle.django_ready and live.lifecycle.providers_ready
    assert live.observer is not None and live.pipeline is not None
    # Built once from the configuration: the same redactor and insight everywhere.
    assert live.redactor is live.redactor and live.insight is live.observer.insight


def test_the_middleware_takes_what_it_needs_from_the_runtime() -> None:
    live = runtime.current()
    middleware = OtelDjangoMiddleware(lambda request: None)
    assert middleware._redactor is live.redactor
    assert middleware._insight is live.insight


def test_without_setup_the_runtime_is_built_from_settings_as_startup_builds_it() -> None:
    live = runtime.current()
    with override_settings(OTEL_DJANGO={"SLOW_QUERY_MS": 7}):
        previous = runtime.reset()
        try:
            built = runtime.current()
            assert built is not live and runtime.current() is built
            assert built.config.db.slow_query_ms == 7.0
            assert built.error is None
            # Under pytest, as startup's: nothing exported.
            assert built.config.traces.exporter == ()
            assert not built.lifecycle.django_ready  # nothing was set up with it
        finally:
            assert runtime.reset(previous) is built
    assert runtime.current() is live


def test_an_invalid_configuration_gives_the_runtime_without_telemetry_and_the_error() -> None:
    built = runtime.build_runtime(os.environ, {"TRACES_SAMPLER_ARG": 2.5})
    assert built.config.sdk_disabled
    assert isinstance(built.error, ConfigError)
    assert "TRACES_SAMPLER_ARG" in str(built.error)


def test_a_runtime_under_another_configuration_keeps_the_process_state() -> None:
    live = runtime.current()
    other = dataclasses.replace(live, config=live.config.replace(REDACT_KEYS=("iban",)))
    assert other.lifecycle is live.lifecycle and other.pipeline is live.pipeline
    assert other.redactor is not live.redactor and other.redactor.is_sensitive("iban")
    assert not live.redactor.is_sensitive("iban")


def test_views_read_the_runtime_in_effect() -> None:
    live = runtime.current()
    runtime.reset(dataclasses.replace(live, config=live.config.replace(METRICS_ENABLED=False)))
    try:
        assert Client().get("/metrics").status_code == 404  # metrics off in this runtime
    finally:
        runtime.reset(live)
