"""Traces: the TracerProvider, the server-span middleware and the console span printer."""
