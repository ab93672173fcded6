"""The OpenTelemetry Resource: who is emitting this telemetry.

Precedence of ``service.name``: ``OTEL_SERVICE_NAME`` > ``service.name`` in
``OTEL_RESOURCE_ATTRIBUTES`` > ``OTEL_DJANGO['SERVICE_NAME']`` > the Django project package
(never the SDK's ``unknown_service``); ``config.py`` resolves it, and reads every input
of the resource otel_django sets. Any other key of
``OTEL_RESOURCE_ATTRIBUTES`` wins over what otel_django detects (``host.name``,
``service.instance.id`` ...).
"""

from __future__ import annotations

import socket
import sys

from opentelemetry.sdk.resources import ProcessResourceDetector, Resource, get_aggregated_resources

from . import __version__
from .config import Config

# process.command_args can hold secrets passed on the command line: dropped.
_DROPPED = frozenset({"process.command_args", "process.command_line"})


def build_resource(config: Config) -> Resource:
    """Resource of this process; call it in the process that exports (after a fork, not before)."""
    detected: dict[str, str | int] = {
        "telemetry.distro.name": "otel_django",
        "telemetry.distro.version": __version__,
        "host.name": socket.gethostname(),
        "process.runtime.name": sys.implementation.name,
        "process.runtime.version": ".".join(map(str, sys.version_info[:3])),
    }
    configured: dict[str, str | int] = {"service.name": config.service.resolved_name}
    if config.service.version:
        configured["service.version"] = config.service.version
    if config.service.environment:
        configured["deployment.environment.name"] = config.service.environment
    # Resource.create: the SDK's defaults, a new service.instance.id, the detectors of
    # OTEL_EXPERIMENTAL_RESOURCE_DETECTORS, then OTEL_RESOURCE_ATTRIBUTES and
    # OTEL_SERVICE_NAME over them; the configured values (already resolved with the
    # environment first) last.
    merged = (
        get_aggregated_resources([ProcessResourceDetector()])
        .merge(Resource(detected))
        .merge(Resource.create(configured))
    )
    cleaned = {k: v for k, v in merged.attributes.items() if k not in _DROPPED}
    return Resource(cleaned, merged.schema_url)
