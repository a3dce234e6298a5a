#!/usr/bin/env bash
# Set up a virtualenv with the dev extras (again whenever pyproject.toml changes) and run the
# whole test suite on SQLite and PostgreSQL. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.installed-dev-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  rm -f .venv/.installed-dev-* && touch "$stamp"
fi
exec .venv/bin/pytest "$@"
