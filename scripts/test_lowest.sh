#!/usr/bin/env bash
# The fast tests against the lowest versions pyproject.toml allows, so that a floor that is
# too low fails. uv resolves every direct dependency (runtime and dev) to its floor and the
# rest to their newest ("lowest-direct") into .venv-lowest; scripts/check_floors.py checks
# that each floor is what got installed; then that ruff lints and the tests that need no
# browser and no extra processes run (unit, CLI, API, the database layer's). mypy is not
# run here: its verdict depends on the libraries' annotations (SQLAlchemy 2.0's differ from
# 2.1's); it runs in the main venv. Needs .venv (scripts/test.sh makes it); extra arguments
# go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# A fixed uv: another release may resolve "lowest-direct" differently.
UV_VERSION=0.13.9
if [ "$(.venv/bin/uv --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  .venv/bin/python -m pip install --quiet "uv==$UV_VERSION"
fi
uv=.venv/bin/uv
lowest=.venv-lowest
requirements=$(mktemp)
trap 'rm -f "$requirements"' EXIT

rm -rf "$lowest"
"$uv" venv --quiet --python python3 "$lowest"
"$uv" pip compile --quiet --no-header --python "$lowest/bin/python" pyproject.toml \
  --extra dev --resolution lowest-direct -o "$requirements"
"$uv" pip sync --quiet --python "$lowest/bin/python" "$requirements"
"$uv" pip install --quiet --python "$lowest/bin/python" --no-deps -e .
# A floor another one forces higher is never installed here, so never tested: say so.
"$lowest/bin/python" scripts/check_floors.py "$requirements"

"$lowest/bin/ruff" check --quiet .
"$lowest/bin/ruff" format --check --quiet .
# The unit tests, the API's and CLI's input handling (where pydantic, FastAPI, Starlette,
# Typer and Click show through) and the database layer's own integration tests (pooling,
# error translation, pragmas, migrations: SQLAlchemy, asyncpg, aiosqlite, Alembic). Chosen
# to stay within about two minutes of CI; the whole suite runs at the newest versions.
exec "$lowest/bin/python" -m pytest -p no:cacheprovider -m "not slow" \
  tests/unit tests/api/test_requests.py tests/api/test_validation.py tests/api/test_errors.py \
  tests/cli/test_errors.py tests/cli/test_output.py tests/integration/test_session.py \
  tests/integration/test_db_errors.py tests/integration/test_sqlite_pragmas.py \
  tests/integration/test_migrations.py "$@"
