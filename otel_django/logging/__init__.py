"""Logs: structlog and stdlib logging as one JSON pipeline, request ids, the access log."""
