#!/usr/bin/env bash
# The main job on the embedded SQLite default, from a fresh machine:
#   1. a virtualenv in .venv with ledgerflow installed (again whenever pyproject.toml changes),
#   2. the database under ./data created or migrated (scripts/init_database.py),
#   3. the synthetic clinical warehouse and a few sample requests seeded (safe to re-run),
#   4. `ledgerflow serve`: the HTTP API on http://127.0.0.1:8000 and the workers, until Ctrl+C.
# Extra arguments go to `ledgerflow serve` (e.g. --port 8080).
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.installed-run-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e .
  rm -f .venv/.installed-run-* && touch "$stamp"
fi
.venv/bin/python scripts/init_database.py
.venv/bin/python scripts/seed_db.py --requests
exec .venv/bin/ledgerflow serve "$@"
