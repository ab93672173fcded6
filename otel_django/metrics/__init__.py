"""Metrics: OTel instruments, their MeterProvider and the Prometheus view."""
