#!/usr/bin/env python3
"""Checkpoint, VACUUM and ANALYZE the ledgerflow database; print its size before and after.

The same command as ``ledgerflow db vacuum``; see ``--help`` for ``--database-url``.
"""

from __future__ import annotations

import sys

from app.cli import main

if __name__ == "__main__":
    main(["db", "vacuum", *sys.argv[1:]])
