"""``ledgerflow worker|submit|status`` and ``requests list|show|cancel``: run workers, submit
requests and follow them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli.common import (
    DatabaseUrlOption,
    JsonOption,
    RequestIdArgument,
    WideOption,
    actor_of,
    command_group,
    database_for,
    id_shortener,
    one_of,
    print_json,
    resolve,
    run_orchestrator,
    run_reader,
    say,
    stdout,
)
from app.cli.tables import Column, add_row, duration, new_table, show, when

if TYPE_CHECKING:
    from datetime import datetime

    from app.orchestrator.engine import Orchestrator
    from app.orchestrator.reads import Reader
    from app.orchestrator.views import History, RequestPage, RequestView

requests_cli = command_group()
requests_group = command_group("List, show and cancel requests; download deliveries.")


@requests_cli.command("worker")
def worker_command(
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", min=1, help="Requests run at once.")
    ] = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Run workers only.

    Scale out: start one per machine on a shared PostgreSQL.
    """
    import asyncio

    from app.bootstrap import build_services
    from app.orchestrator.worker import Worker, run_worker

    database = database_for(database_url)

    async def go() -> None:
        services = build_services(database=database)
        try:
            await services.check_database()
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


@requests_cli.command("submit")
def submit_command(
    kind: Annotated[
        str, typer.Argument(metavar="KIND", help="Request kind: research or transcription.")
    ],
    payload_file: Annotated[
        str,
        typer.Argument(
            metavar="PAYLOAD_FILE",
            help="JSON payload file ('-' for standard input).",
            show_default=False,
        ),
    ],
    submitted_by: Annotated[str, typer.Option("--as", help="Who submits.")] = "cli",
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", help="Submitting again returns the same.")
    ] = None,
    priority: Annotated[
        int, typer.Option("--priority", help="Higher runs first (-100 to 100).")
    ] = 0,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Submit a request.

    The payload is checked first: every problem is named at once, and nothing is written.
    """
    payload = _read_payload(payload_file)

    async def work(orchestrator: Orchestrator) -> RequestView:
        return await orchestrator.submit(kind, payload, submitted_by, idempotency_key, priority)

    view = run_orchestrator(database_url, work)
    if as_json:
        print_json(view)
    else:
        stdout().print(f"request {view.id}: {view.kind}, {view.state}", highlight=False)


def _read_payload(path: str) -> Any:
    """The JSON in ``path`` (``-``: standard input); a problem is one ``InvalidRequest``."""
    import json
    import sys

    from app.orchestrator.exceptions import InvalidRequest

    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as file:
                text = file.read()
    except OSError as exc:
        raise InvalidRequest(
            f"cannot read {path} ({exc.strerror or exc})", field="PAYLOAD_FILE"
        ) from None
    except UnicodeDecodeError:
        raise InvalidRequest(f"{path} is not UTF-8 text", field="PAYLOAD_FILE") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"{path} is not JSON ({exc})", field="PAYLOAD_FILE") from None


@requests_cli.command("status")
def status_command(
    request_id: RequestIdArgument,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Where a request is, in one line.

    With --json: the request with its whole history.
    """

    async def work(reader: Reader) -> History:
        rid = await resolve(reader.database, "request", request_id, "REQUEST_ID")
        return await reader.history(rid)

    history = run_reader(database_url, work)
    if as_json:
        print_json(history)
        return
    r = history.request
    stdout().print(f"{r.id} {r.kind} {r.state}{_where(r)}", highlight=False, soft_wrap=True)


def _where(r: RequestView) -> str:
    """`` at STEP (attempt N)`` while the request is under way, else nothing."""
    from app.orchestrator.states import TERMINAL

    if r.current_step is None or r.state in TERMINAL:
        return ""
    return f" at {r.current_step} (attempt {r.attempt})"


@requests_group.command("list")
def requests_list(
    kind: Annotated[str | None, typer.Option("--kind", help="research | transcription")] = None,
    state: Annotated[str | None, typer.Option("--state", help="e.g. pending, completed")] = None,
    submitted_by: Annotated[str | None, typer.Option("--submitted-by")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Created at or after (ISO).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Created before (ISO).")] = None,
    cursor: Annotated[str | None, typer.Option("--cursor", help="Next page of a list.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500, help="At most this many.")] = 50,
    wide: WideOption = False,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """List requests, newest first.

    Filtered, one page at a time (--cursor continues).
    """
    if state is not None:
        from app.orchestrator.states import State

        one_of(state, [s.value for s in State], "--state")
    created_after = _time(since, "--since")
    created_before = _time(until, "--until")

    async def work(reader: Reader) -> RequestPage:
        return await reader.list(
            kind=kind,
            state=state,
            submitted_by=submitted_by,
            created_after=created_after,
            created_before=created_before,
            cursor=cursor,
            limit=limit,
        )

    page = run_reader(database_url, work)
    if as_json:
        print_json(page)
        return
    columns = [
        Column("id", whole=True),
        Column("kind"),
        Column("state"),
        Column("step"),
        Column("by", max_width=16),
        Column("created (UTC)"),
    ]
    if wide:
        columns += [Column("attempt"), Column("priority"), Column("completed (UTC)")]
    table = new_table("requests, newest first", columns)
    shorten = id_shortener((r.id for r in page.items), wide)
    for r in page.items:
        row = [shorten(r.id), r.kind, r.state, r.current_step or "", r.submitted_by]
        row.append(when(r.created_at, seconds=wide))
        if wide:
            row += [str(r.attempt), str(r.priority), when(r.completed_at)]
        add_row(table, *row)
    show(table, wide=wide)
    if page.next_cursor:
        say(f"next page: --cursor {page.next_cursor}")


def _time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    from app.audit.query import parse_time

    return parse_time(value, option)


@requests_group.command("show")
def requests_show(
    request_id: RequestIdArgument,
    wide: WideOption = False,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Show a request and its timeline.

    Transitions, step attempts with their durations, approvals and escalations, in order.
    """

    async def work(reader: Reader) -> History:
        rid = await resolve(reader.database, "request", request_id, "REQUEST_ID")
        return await reader.history(rid)

    history = run_reader(database_url, work)
    if as_json:
        print_json(history)
    else:
        _print_history(history, wide)


def _print_history(history: History, wide: bool) -> None:
    from rich.table import Table

    from app.cli.timeline import timeline

    r = history.request
    facts = Table.grid(padding=(0, 2))
    facts.add_column(no_wrap=True)
    facts.add_column(overflow="fold")
    add_row(facts, "request", f"{r.id} ({r.kind})")
    add_row(facts, "state", f"{r.state}{_where(r)}")
    add_row(facts, "submitted", f"{when(r.created_at)} UTC by {r.submitted_by}")
    add_row(facts, "priority", str(r.priority))
    if r.completed_at is not None:
        add_row(facts, "finished", f"{when(r.completed_at)} UTC, {_elapsed(r)} after submit")
    if r.error:
        add_row(facts, "error", str(r.error.get("error") or r.error.get("reason") or r.error))
    out = stdout()
    out.print(facts)
    table = new_table(None, [Column("at (UTC)"), Column("what happened", wrap=True)])
    for entry in timeline(history, wide=wide):
        add_row(table, when(entry.at), entry.what)
    out.print(table)


def _elapsed(r: RequestView) -> str:
    if r.completed_at is None:
        return ""
    return duration(round((r.completed_at - r.created_at).total_seconds() * 1000))


@requests_group.command("cancel")
def requests_cancel(
    request_id: RequestIdArgument,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (for the record).")] = None,
    actor: Annotated[
        str | None, typer.Option("--as", help="Who cancels (audited); default cli:$USER.")
    ] = None,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Cancel a request that has not finished.

    A running step's late result is discarded.
    """
    who = actor_of(actor)

    async def work(orchestrator: Orchestrator) -> RequestView:
        rid = await resolve(orchestrator.database, "request", request_id, "REQUEST_ID")
        return await orchestrator.cancel(rid, who, reason)

    view = run_orchestrator(database_url, work)
    if as_json:
        print_json(view)
    else:
        stdout().print(f"request {view.id} is now {view.state}", highlight=False)


#: ``requests wait`` exit codes by where the request stopped.
WAIT_EXIT = {"completed": 0, "failed": 1, "cancelled": 1, "awaiting_approval": 4, "escalated": 4}
#: ``requests wait`` exit code when ``--timeout`` ran out first.
WAIT_TIMED_OUT = 5


@requests_group.command("wait")
def requests_wait(
    request_id: RequestIdArgument,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0, help="Give up after this many seconds (default: never)."),
    ] = None,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Wait until a request finishes or needs a person, and print its state.

    Exit 0 completed, 1 failed or cancelled, 4 waiting for a person (awaiting_approval,
    escalated), 5 still under way when --timeout ran out.
    """

    async def work(reader: Reader) -> RequestView:
        from app.config import get_settings
        from app.orchestrator.watch import RequestWatcher, wait_until_settled

        rid = await resolve(reader.database, "request", request_id, "REQUEST_ID")
        settings = get_settings()
        watcher = RequestWatcher(reader.database, poll_seconds=settings.watch_poll_seconds)
        try:
            return await wait_until_settled(reader, watcher, rid, timeout)
        finally:
            watcher.close()

    view = run_reader(database_url, work)
    if as_json:
        print_json(view)
    else:
        stdout().print(f"{view.id} {view.kind} {view.state}{_where(view)}", highlight=False)
    code = WAIT_EXIT.get(view.state, WAIT_TIMED_OUT)
    if code:
        raise typer.Exit(code)
