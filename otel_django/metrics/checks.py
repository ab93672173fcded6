"""System checks of the metrics endpoint."""

from __future__ import annotations

from django.core.checks import CheckMessage, Warning

from ..config import Config


def check_metrics(config: Config) -> list[CheckMessage]:
    if not config.metrics_pulled:
        return []
    if not config.metrics.password and not config.metrics.password_file:
        return [
            Warning(
                "No metrics password is set, so /metrics answers 401 to everyone (fail closed).",
                hint="Set OTEL_DJANGO_METRICS_PASSWORD or OTEL_DJANGO_METRICS_PASSWORD_FILE.",
                id="otel_django.W101",
            )
        ]
    messages: list[CheckMessage] = []
    path = config.metrics.password_file
    if path:
        if config.metrics.password:
            messages.append(
                Warning(
                    "Both METRICS_PASSWORD and METRICS_PASSWORD_FILE are set: the file is used.",
                    hint="Remove one of them.",
                    id="otel_django.W102",
                )
            )
        try:
            with open(path, "rb") as file:
                readable = bool(file.read(8192).rstrip(b"\r\n"))
            reason = "is empty"
        except OSError as exc:
            readable, reason = False, f"cannot be read ({exc.strerror})"
        if not readable:
            messages.append(
                Warning(
                    f"The metrics password file {path} {reason}, so /metrics answers 401 to "
                    "everyone until it holds a password.",
                    hint="Mount the secret there, readable by the server's user.",
                    id="otel_django.W103",
                )
            )
    return messages
