#!/usr/bin/env python3
"""Write a verified hot backup of the ledgerflow database and prune old ones.

The same command as ``ledgerflow db backup``: SQLite through the online backup API,
PostgreSQL through ``pg_dump -Fc``; see ``--help`` for ``--dir``, ``--keep`` and
``--database-url``. Restore with ``ledgerflow db restore BACKUP``.
"""

from __future__ import annotations

import sys

from app.cli import main

if __name__ == "__main__":
    main(["db", "backup", *sys.argv[1:]])
