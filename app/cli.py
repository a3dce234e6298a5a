"""The ``ledgerflow`` command (Typer + Rich).

Errors are mapped to exit codes in one place (:func:`main`): a ``LedgerflowError`` prints
one line naming the problem and exits 2 (bad input or refusal) or 3 (database); nothing
prints a traceback to an operator.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from app.config import get_settings, parse_database_url
from app.database import Database, DatabaseError
from app.database import schema as db_schema
from app.exceptions import LedgerflowError
from app.logging import configure_logging

T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)

cli = typer.Typer(
    name="ledgerflow",
    help="Durable, audited orchestrator for clinical back-office work.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_cli = typer.Typer(help="Create, migrate and inspect the database.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option("--database-url", help="Overrides DATABASE_URL for this command."),
]


class Refused(LedgerflowError):
    """The command refused to act."""

    code = "refused"


def _database(url: str | None) -> Database:
    return Database.from_url(parse_database_url(url) if url else None)


def _run(database: Database, work: Callable[[Database], Awaitable[T]]) -> T:
    async def _go() -> T:
        try:
            return await work(database)
        finally:
            await database.dispose()

    return asyncio.run(_go())


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


@cli.command("worker")
def worker_command(
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", min=1, help="Requests run at once.")
    ] = None,
) -> None:
    """Run workers only (scale out: start one per machine on a shared PostgreSQL)."""
    from app.bootstrap import build_services
    from app.orchestrator.worker import Worker, run_worker

    async def go() -> None:
        services = build_services()
        try:
            worker = Worker(
                services.orchestrator,
                services.agents,
                settings=services.settings,
                concurrency=concurrency,
                warehouse=services.warehouse,
            )
            await run_worker(worker)
        finally:
            await services.close()

    asyncio.run(go())


@cli.command("submit")
def submit_command(
    kind: Annotated[str, typer.Argument(help="Request kind: research or transcription.")],
    payload_file: Annotated[
        typer.FileText, typer.Argument(help="JSON payload file ('-' for standard input).")
    ],
    submitted_by: Annotated[str, typer.Option("--as", help="Who submits.")] = "cli",
    idempotency_key: Annotated[str | None, typer.Option("--idempotency-key")] = None,
    priority: Annotated[int, typer.Option("--priority")] = 0,
) -> None:
    """Submit a request and print it as JSON."""
    import json

    from app.bootstrap import build_services
    from app.orchestrator.exceptions import InvalidRequest

    try:
        payload = json.load(payload_file)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"not JSON ({exc})", field="payload") from exc

    async def go() -> str:
        services = build_services()
        try:
            view = await services.orchestrator.submit(
                kind, payload, submitted_by, idempotency_key, priority
            )
            return view.model_dump_json(indent=2)
        finally:
            await services.close()

    console.print_json(asyncio.run(go()))


@cli.command("status")
def status_command(
    request_id: Annotated[str, typer.Argument(help="The request's id.")],
) -> None:
    """Print one request with its history as JSON."""
    import uuid

    from app.bootstrap import build_services
    from app.orchestrator.exceptions import InvalidRequest

    try:
        rid = uuid.UUID(request_id)
    except ValueError as exc:
        raise InvalidRequest(f"{request_id!r} is not a request id", field="request_id") from exc

    async def go() -> str:
        services = build_services()
        try:
            return (await services.orchestrator.history(rid)).model_dump_json(indent=2)
        finally:
            await services.close()

    console.print_json(asyncio.run(go()))


def _exit_code(exc: LedgerflowError) -> int:
    return 3 if isinstance(exc, DatabaseError) else 2


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the CLI and turn our errors into one line and an exit code."""
    try:
        settings = get_settings()
        configure_logging(settings.log_level, settings.log_format)
        cli(args=list(argv) if argv is not None else None)
    except LedgerflowError as exc:
        err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
        sys.exit(_exit_code(exc))
