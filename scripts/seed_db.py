#!/usr/bin/env python3
"""Seed the synthetic clinical warehouse (deterministic for a given size and seed).

    python scripts/seed_db.py [--patients 2000] [--seed 42] [--database-url URL] [--force]

The warehouse goes to ``--database-url``, else ``WAREHOUSE_URL``, else the orchestrator
database (``DATABASE_URL``). In the orchestrator database the tables come from the
migrations (run ``scripts/init_database.py`` first); in a separate warehouse database they
are created here. Re-running is safe: an identical warehouse is left alone, a different
one is replaced in one transaction (``--force`` replaces it regardless).

Exit codes: 0 done, 2 bad arguments or settings, 3 database problem.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.engine import URL

from app.agents.research.synthetic import MAX_PATIENTS, SeedSummary, seed_warehouse
from app.config import get_settings, parse_database_url
from app.database import Database, DatabaseError
from app.exceptions import LedgerflowError


def _patients(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_PATIENTS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_PATIENTS}, not {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seed_db.py", description="Seed the synthetic clinical warehouse."
    )
    parser.add_argument(
        "--patients", type=_patients, default=2000, help="number of patients (default 2000)"
    )
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument(
        "--database-url",
        help="warehouse database (default WAREHOUSE_URL, else DATABASE_URL)",
    )
    parser.add_argument(
        "--force", action="store_true", help="reseed even if the warehouse already matches"
    )
    return parser


def _identity(url: URL) -> str:
    if url.drivername.startswith("sqlite") and url.database:
        return f"sqlite:{Path(url.database).resolve()}"
    return url.render_as_string(hide_password=False)


def _same_database(a: URL, b: URL) -> bool:
    return _identity(a) == _identity(b)


async def _seed(url: URL, patients: int, seed: int, force: bool) -> SeedSummary:
    settings = get_settings()
    # Only a warehouse outside the orchestrator database is ours to create; the
    # orchestrator's tables belong to the migrations.
    separate = not _same_database(url, settings.database)
    database = Database.from_url(url, settings)
    try:
        return await seed_warehouse(database, patients, seed, create_tables=separate, force=force)
    finally:
        await database.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, seed, print a one-line summary; return the exit code."""
    args = _parser().parse_args(argv)
    try:
        settings = get_settings()
        url = parse_database_url(args.database_url) if args.database_url else settings.warehouse
        summary = asyncio.run(_seed(url, args.patients, args.seed, args.force))
    except DatabaseError as exc:
        print(f"seed_db: {exc.message}", file=sys.stderr)
        return 3
    except LedgerflowError as exc:
        print(f"seed_db: {exc.message}", file=sys.stderr)
        return 2
    print(summary.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
