# `make demo`: set up and run the demo shop on SQLite, printing its telemetry.
# `make test`: set up and run the whole test suite (Django 5.2) and the smoke subset (Django 4.2).

PYTEST_ARGS ?=

.PHONY: demo test lint bench

demo:
	bash scripts/demo

test:
	bash scripts/setup-dev
	.venv/bin/python -m pytest $(PYTEST_ARGS)
	.venv-django42/bin/python -m pytest -m smoke $(PYTEST_ARGS)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

bench:
	bash scripts/setup-bench
	.venv-bench/bin/python -m benchmarks.run --json benchmarks/results/latest.json

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
