#!/usr/bin/env python3
"""Bring the ledgerflow database to the head migration and show its tables.

The same command as ``ledgerflow db init``; see ``--help`` for ``--drop``, ``--yes``,
``--force`` and ``--database-url``.
"""

from __future__ import annotations

import sys

from app.cli import main

if __name__ == "__main__":
    main(["db", "init", *sys.argv[1:]])
