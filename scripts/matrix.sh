# The supported matrix, sourced by scripts/setup-dev and scripts/test-matrix.
# One leg per line: Python, Django release, virtual environment, what `make test` runs there.
# The full suite runs on the newest pair; the smoke subset (`-m smoke`) on the others.
MATRIX="\
3.13 6.1 .venv                 full
3.11 5.2 .venv-py311-django52  smoke
3.12 6.0 .venv-py312-django60  smoke"

IN_CI=false
if [ "${CI:-}" = true ]; then IN_CI=true; fi

# find_leg_python VERSION: the interpreter's path on stdout; the reason on stderr if none.
find_leg_python() {
  bash "$(dirname "${BASH_SOURCE[0]}")/find-python" "$1"
}
