# `make demo`: set up and run the demo shop on SQLite, printing its telemetry.
# `make test`: set up and run the supported matrix (scripts/matrix.sh): the whole test suite on
#   Python 3.13 + Django 6.1, the smoke subset on Python 3.11 + Django 5.2 and on
#   Python 3.12 + Django 6.0, then ruff and mypy. PYTEST_ARGS go to every pytest run.

PYTEST_ARGS ?=

.PHONY: demo test lint bench

demo:
	bash scripts/demo

test:
	bash scripts/setup-dev
	bash scripts/test-matrix $(PYTEST_ARGS)

bench:
	bash scripts/setup-bench
	.venv-bench/bin/python -m benchmarks.run --json benchmarks/results/latest.json

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
