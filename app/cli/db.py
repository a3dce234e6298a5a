"""``ledgerflow db ...``: create, migrate and inspect the database."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from app.cli.common import DatabaseUrlOption, Refused, console
from app.cli.common import database_for as _database
from app.cli.common import run_with as _run
from app.database import Database
from app.database import schema as db_schema

db_cli = typer.Typer(help="Create, migrate and inspect the database.", no_args_is_help=True)


def _print_status(status: db_schema.SchemaStatus, url: str) -> None:
    console.print(f"database: {url}", soft_wrap=True, highlight=False)
    table = Table()
    table.add_column("table")
    for name in status.tables:
        table.add_row(name)
    console.print(table)
    state = "at head" if status.at_head else f"behind head {status.head}"
    console.print(
        f"revision: {status.revision or 'none'} ({state}); requests: {status.request_count}"
    )


@db_cli.command("init")
def db_init(
    database_url: DatabaseUrlOption = None,
    drop: Annotated[bool, typer.Option("--drop", help="Drop every table first.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask before dropping.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="With --drop: drop even when requests exist.")
    ] = False,
) -> None:
    """Bring the database to the head migration and show its tables (safe to run twice)."""
    database = _database(database_url)

    async def work(db: Database) -> db_schema.SchemaStatus:
        if drop:
            before = await db_schema.schema_status(db)
            if before.request_count and not force:
                raise Refused(
                    f"--drop: the database holds {before.request_count} requests; "
                    "add --force to drop them"
                )
            if not yes and not _confirm_drop(db):
                raise Refused("--drop: not confirmed (add --yes to drop without asking)")
            await db_schema.drop_everything(db)
        await db_schema.upgrade(db)
        return await db_schema.schema_status(db)

    status = _run(database, work)
    _print_status(status, database.url.render_as_string(hide_password=True))


def _confirm_drop(db: Database) -> bool:
    if not sys.stdin.isatty():
        return False
    where = db.url.render_as_string(hide_password=True)
    return typer.confirm(f"Drop every ledgerflow table in {where}?", default=False)


@db_cli.command("upgrade")
def db_upgrade(
    database_url: DatabaseUrlOption = None,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply migrations up to REVISION (default: head)."""
    database = _database(database_url)

    async def work(db: Database) -> db_schema.SchemaStatus:
        await db_schema.upgrade(db, revision)
        return await db_schema.schema_status(db)

    status = _run(database, work)
    console.print(f"revision: {status.revision} (head {status.head})")


@db_cli.command("current")
def db_current(database_url: DatabaseUrlOption = None) -> None:
    """Show the database's revision, tables and request count."""
    database = _database(database_url)
    status = _run(database, db_schema.schema_status)
    _print_status(status, database.url.render_as_string(hide_password=True))
    if not status.at_head:
        raise typer.Exit(1)
