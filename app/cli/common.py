"""What every ``ledgerflow`` command shares: consoles, the database option, running async work."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from app.config import parse_database_url
from app.database import Database
from app.exceptions import LedgerflowError

T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option("--database-url", help="Overrides DATABASE_URL for this command."),
]


class Refused(LedgerflowError):
    """The command refused to act."""

    code = "refused"


def actor_of(name: str | None) -> str:
    """Who acts, for the audit trail: ``--as NAME`` if given, else ``cli:$USER``."""
    if name is not None:
        if not name.strip():
            raise Refused("--as: must name who acts")
        return name.strip()
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


def database_for(url: str | None) -> Database:
    """The database named by ``--database-url``, else by the settings."""
    return Database.from_url(parse_database_url(url) if url else None)


def run_with(database: Database, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``work(database)`` to completion and dispose of the database's pool afterwards."""

    async def _go() -> T:
        try:
            return await work(database)
        finally:
            await database.dispose()

    return asyncio.run(_go())
