"""What every ``ledgerflow`` command shares: consoles, the database option, running async work."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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


@contextlib.contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int | None], None]]:
    """A Rich progress bar on standard error, shown only on a terminal.

    Yields ``report(done, total)``; ``total`` may be ``None`` when it is not known.
    """
    console = Console(stderr=True)
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(label, total=None)

        def report(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield report
