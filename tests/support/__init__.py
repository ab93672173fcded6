"""What the tests share, other than fixtures (those are in ``tests/conftest.py``).

* ``services``: PostgreSQL, Redis and Prometheus' binaries (skip, or fail under CI), free ports;
* ``otlp_receiver``, ``sentry_receiver``, ``prometheus_server``: the receivers standing in for a
  Collector and Sentry, and a real Prometheus;
* ``servers``: the demo as real server processes, every common server;
* ``auth``: the Basic credentials of ``/metrics``; ``metrics``: scraping and reading samples;
* ``spans``: finding server, query and received spans; ``lines``: JSON log lines;
* ``config``: how the ``override_config`` fixture makes another configuration take effect;
* ``shop``: the demo shop's rows; ``ops``: paths and PromQL of the operations kit.
"""
