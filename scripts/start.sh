#!/usr/bin/env bash
# Set up a virtualenv (once), create or migrate the SQLite database under ./data and show
# its status. Later phases make this start the service.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/ledgerflow ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e .
fi
exec .venv/bin/python scripts/init_database.py "$@"
