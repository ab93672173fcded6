"""The OpenTelemetry Resource: who is emitting this telemetry."""

from __future__ import annotations

import os
import socket
import sys
import uuid

from opentelemetry.sdk.resources import (
    OTELResourceDetector,
    ProcessResourceDetector,
    Resource,
    get_aggregated_resources,
)

from . import __version__
from .config import Config


def default_service_name() -> str:
    """The Django project package (``mysite`` of ``mysite.settings``), else ``django``."""
    module = os.environ.get("DJANGO_SETTINGS_MODULE", "")
    return module.split(".", 1)[0] or "django"


def build_resource(config: Config) -> Resource:
    """Resource of this process; call it in the process that exports (after a fork, not before)."""
    attributes: dict[str, str | int] = {
        "service.name": config.service_name or default_service_name(),
        "service.instance.id": str(uuid.uuid4()),
        "telemetry.distro.name": "otel_django",
        "telemetry.distro.version": __version__,
        "host.name": socket.gethostname(),
        "process.runtime.name": sys.implementation.name,
        "process.runtime.version": ".".join(map(str, sys.version_info[:3])),
    }
    if config.service_version:
        attributes["service.version"] = config.service_version
    if config.environment:
        attributes["deployment.environment.name"] = config.environment
    detected = get_aggregated_resources([OTELResourceDetector(), ProcessResourceDetector()])
    # Our attributes win over OTEL_RESOURCE_ATTRIBUTES only where the user set a setting;
    # process.command_args can hold secrets passed on the command line: dropped.
    merged = detected.merge(Resource.create(attributes))
    cleaned = {
        k: v
        for k, v in merged.attributes.items()
        if k not in {"process.command_args", "process.command_line"}
    }
    return Resource(cleaned, merged.schema_url)
