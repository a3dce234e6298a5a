#!/usr/bin/env bash
# Set up a virtualenv with the dev extras (once) and run the whole test suite on SQLite and
# PostgreSQL. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/pytest ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[dev]'
fi
exec .venv/bin/pytest "$@"
