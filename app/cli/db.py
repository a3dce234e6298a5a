"""``ledgerflow db ...``: create, migrate, inspect, back up, restore and vacuum the database."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.common import (
    DatabaseUrlOption,
    JsonOption,
    Refused,
    command_group,
    describe_database,
    print_json,
    say,
    stdout,
)
from app.cli.common import database_for as _database
from app.cli.common import run_with as _run

if TYPE_CHECKING:
    from app.database import Database
    from app.database import schema as db_schema
    from app.ops.backup import BackupResult, RestoreResult
    from app.ops.vacuum import VacuumReport

db_cli = command_group(
    "The database: migrate, back up, restore. Create, migrate, inspect, back up, restore "
    "and vacuum it."
)


def _print_status(status: db_schema.SchemaStatus, database: Database, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "database": describe_database(database.url),
                "revision": status.revision,
                "head": status.head,
                "at_head": status.at_head,
                "tables": list(status.tables),
                "request_count": status.request_count,
            }
        )
        return
    console = stdout()
    console.print(f"database: {describe_database(database.url)}", soft_wrap=True, highlight=False)
    console.print(f"tables: {', '.join(status.tables)}", soft_wrap=True, highlight=False)
    state = "at head" if status.at_head else f"behind head {status.head}"
    console.print(
        f"revision: {status.revision or 'none'} ({state}); requests: {status.request_count}",
        highlight=False,
    )


@db_cli.command("init")
def db_init(
    database_url: DatabaseUrlOption = None,
    drop: Annotated[bool, typer.Option("--drop", help="Drop every table first.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask before dropping.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="With --drop: drop even when requests exist.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Migrate to head and show the tables.

    Creates the database (a SQLite file) if needed; safe to run twice.
    """
    from app.database import schema as db_schema
    from app.database.engine import create_sqlite_file

    database = _database(database_url, announce=False)

    async def work(db: Database) -> db_schema.SchemaStatus:
        create_sqlite_file(db.url)
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
    _print_status(status, database, as_json)


def _confirm_drop(db: Database) -> bool:
    if not sys.stdin.isatty():
        return False
    where = db.url.render_as_string(hide_password=True)
    return typer.confirm(f"Drop every ledgerflow table in {where}?", default=False)


@db_cli.command("upgrade")
def db_upgrade(
    database_url: DatabaseUrlOption = None,
    revision: Annotated[str, typer.Argument(metavar="REVISION", help="Target revision.")] = "head",
) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from app.database import schema as db_schema

    database = _database(database_url)

    async def work(db: Database) -> db_schema.SchemaStatus:
        await db_schema.upgrade(db, revision)
        return await db_schema.schema_status(db)

    status = _run(database, work)
    stdout().print(f"revision: {status.revision} (head {status.head})", highlight=False)


@db_cli.command("current")
def db_current(database_url: DatabaseUrlOption = None, as_json: JsonOption = False) -> None:
    """Show the revision, tables and requests.

    Exits 1 when the database is behind the head migration.
    """
    from app.database import schema as db_schema

    database = _database(database_url, announce=False)
    status = _run(database, db_schema.schema_status)
    _print_status(status, database, as_json)
    if not status.at_head:
        raise typer.Exit(1)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


@db_cli.command("backup")
def db_backup(
    database_url: DatabaseUrlOption = None,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Write here instead of BACKUP_DIR.")
    ] = None,
    keep: Annotated[
        int | None,
        typer.Option("--keep", help="Keep this many newest backups (default BACKUP_KEEP; 0: all)."),
    ] = None,
) -> None:
    """Write a verified hot backup.

    SQLite backup API or pg_dump -Fc; old backups are pruned to BACKUP_KEEP.
    """
    from app.database.exceptions import describe_url
    from app.ops.backup import create_backup

    if keep is not None and keep < 0:
        raise Refused("--keep: must be zero or more")
    database = _database(database_url)

    async def work(db: Database) -> BackupResult:
        return await create_backup(db, directory=directory, keep=keep)

    result = _run(database, work)
    sys.stdout.write(f"{result.path}\n")
    say(
        f"backup of {describe_url(database.url)}: {result.path.name} "
        f"({_size(result.size_bytes)}); {result.verification.summary()}"
        + (f"; pruned {len(result.pruned)} older backup(s)" if result.pruned else "")
    )


@db_cli.command("restore")
def db_restore(
    backup: Annotated[
        Path, typer.Argument(metavar="BACKUP", help="A backup written by `ledgerflow db backup`.")
    ],
    database_url: DatabaseUrlOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace everything in a non-empty database.")
    ] = False,
) -> None:
    """Restore BACKUP into an empty database.

    A non-empty one only with --force.
    """
    from app.ops.backup import restore_backup

    if not backup.is_file():
        raise Refused(f"BACKUP: {backup} does not exist or is not a file")
    database = _database(database_url)

    async def work(db: Database) -> RestoreResult:
        return await restore_backup(db, backup, force=force)

    result = _run(database, work)
    stdout().print(
        f"restored {result.source.name} into {result.target}"
        + (" (replacing its contents)" if result.replaced else "")
        + f"; {result.verification.summary()}",
        highlight=False,
        soft_wrap=True,
    )


@db_cli.command("vacuum")
def db_vacuum(database_url: DatabaseUrlOption = None) -> None:
    """Checkpoint, VACUUM and ANALYZE.

    Prints the database's size before and after.
    """
    from app.ops.vacuum import vacuum_database

    database = _database(database_url)
    report: VacuumReport = _run(database, vacuum_database)
    for note in report.notes:
        say(f"note: {note}")
    stdout().print(
        f"{report.backend}: {'; '.join(report.steps)} in {report.seconds:.1f} s; "
        f"size {_size(report.before_bytes)} -> {_size(report.after_bytes)} "
        f"({report.before_bytes} -> {report.after_bytes} bytes)",
        highlight=False,
        soft_wrap=True,
    )
