"""``ledgerflow worker|submit|status``, ``requests list|show``, ``approvals ...``,
``escalations ...``: run workers, and submit, read and steer requests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

import typer
from pydantic import BaseModel
from rich.table import Table

from app.cli.common import DatabaseUrlOption, console, err_console
from app.cli.common import actor_of as _actor

if TYPE_CHECKING:
    from app.orchestrator.engine import Orchestrator
    from app.orchestrator.views import (
        ApprovalView,
        EscalationView,
        History,
        RequestPage,
        RequestView,
    )

T = TypeVar("T")

requests_cli = typer.Typer()


@requests_cli.command("worker")
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


@requests_cli.command("status")
def status_command(
    request_id: Annotated[str, typer.Argument(help="The request's id.")],
) -> None:
    """Print one request with its history as JSON."""
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


# --------------------------------------------------------------------------- read and review

requests_group = typer.Typer(help="List and show requests.", no_args_is_help=True)
approvals_cli = typer.Typer(help="List and decide approval gates.", no_args_is_help=True)
escalations_cli = typer.Typer(help="List and resolve escalations.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ActorOption = Annotated[
    str | None,
    typer.Option("--as", help="Who decides (recorded in the audit trail); default cli:$USER."),
]
NoteOption = Annotated[str | None, typer.Option("--note", help="A note for the record.")]
LimitOption = Annotated[int, typer.Option("--limit", min=1, max=500, help="At most this many.")]


def _uuid(value: str, option: str) -> uuid.UUID:
    from app.orchestrator.exceptions import InvalidRequest

    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidRequest(f"{value!r} is not an id", field=option) from None


def _with_orchestrator(database_url: str | None, work: Callable[[Orchestrator], Awaitable[T]]) -> T:
    from app.bootstrap import build_services
    from app.cli.common import database_for

    async def go() -> T:
        services = build_services(database=database_for(database_url))
        try:
            return await work(services.orchestrator)
        finally:
            await services.close()

    return asyncio.run(go())


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else ""


def _print_json(items: Sequence[BaseModel] | BaseModel) -> None:
    import json
    import sys

    if isinstance(items, BaseModel):
        sys.stdout.write(items.model_dump_json(indent=2) + "\n")
        return
    sys.stdout.write(json.dumps([i.model_dump(mode="json") for i in items], indent=2) + "\n")


@requests_group.command("list")
def requests_list(
    kind: Annotated[str | None, typer.Option("--kind", help="research | transcription")] = None,
    state: Annotated[str | None, typer.Option("--state", help="e.g. pending, completed")] = None,
    submitted_by: Annotated[str | None, typer.Option("--submitted-by")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Created at or after (ISO).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Created before (ISO).")] = None,
    cursor: Annotated[str | None, typer.Option("--cursor", help="Next page of a list.")] = None,
    limit: LimitOption = 50,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Requests newest first, filtered, one page at a time."""
    from app.audit.query import parse_time

    created_after = parse_time(since, "--since") if since else None
    created_before = parse_time(until, "--until") if until else None

    async def work(orchestrator: Orchestrator) -> RequestPage:
        return await orchestrator.list(
            kind=kind,
            state=state,
            submitted_by=submitted_by,
            created_after=created_after,
            created_before=created_before,
            cursor=cursor,
            limit=limit,
        )

    page = _with_orchestrator(database_url, work)
    if as_json:
        _print_json(page)
        return
    table = Table(title="requests (newest first)")
    for column in ("id", "kind", "state", "step", "submitted by", "created (UTC)", "completed"):
        table.add_column(column, overflow="fold")
    for r in page.items:
        table.add_row(
            str(r.id),
            r.kind,
            r.state,
            r.current_step or "",
            r.submitted_by,
            _when(r.created_at),
            _when(r.completed_at),
        )
    console.print(table)
    if page.next_cursor:
        err_console.print(f"next page: --cursor {page.next_cursor}", highlight=False)


@requests_group.command("show")
def requests_show(
    request_id: Annotated[str, typer.Argument(help="The request's id.")],
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """One request with its transitions, step executions, approvals and escalations."""
    rid = _uuid(request_id, "REQUEST_ID")

    async def work(orchestrator: Orchestrator) -> History:
        return await orchestrator.history(rid)

    history = _with_orchestrator(database_url, work)
    if as_json:
        _print_json(history)
        return
    r = history.request
    console.print(
        f"[bold]{r.id}[/] {r.kind} [bold]{r.state}[/] step={r.current_step or '-'} "
        f"attempt={r.attempt} by {r.submitted_by} created {_when(r.created_at)}",
        highlight=False,
        soft_wrap=True,
    )
    transitions = Table(title="transitions")
    for column in ("at (UTC)", "from", "to", "step", "actor", "reason"):
        transitions.add_column(column, overflow="fold")
    for t in history.transitions:
        transitions.add_row(
            _when(t.created_at), t.from_state or "", t.to_state, t.step or "", t.actor, t.reason
        )
    console.print(transitions)
    executions = Table(title="step executions")
    for column in ("step", "agent", "attempt", "status", "ms", "worker", "error"):
        executions.add_column(column, overflow="fold")
    for e in history.executions:
        executions.add_row(
            e.step,
            e.agent_id,
            str(e.attempt),
            e.status,
            "" if e.duration_ms is None else str(e.duration_ms),
            e.worker_id or "",
            e.error or "",
        )
    console.print(executions)
    if history.approvals:
        _approvals_table(history.approvals)
    if history.escalations:
        _escalations_table(history.escalations)


def _approvals_table(approvals: Sequence[ApprovalView]) -> None:
    table = Table(title="approvals")
    for column in ("id", "request", "step", "status", "requested (UTC)", "decided by", "note"):
        table.add_column(column, overflow="fold")
    for a in approvals:
        table.add_row(
            str(a.id),
            str(a.request_id),
            a.step,
            a.status,
            _when(a.requested_at),
            a.decided_by or "",
            a.note or "",
        )
    console.print(table)


def _escalations_table(escalations: Sequence[EscalationView]) -> None:
    table = Table(title="escalations")
    for column in ("id", "request", "step", "reason", "status", "opened (UTC)", "resolution"):
        table.add_column(column, overflow="fold")
    for e in escalations:
        table.add_row(
            str(e.id),
            str(e.request_id),
            e.step,
            e.reason,
            e.status,
            _when(e.opened_at),
            e.resolution or "",
        )
    console.print(table)


@approvals_cli.command("list")
def approvals_list(
    status: Annotated[
        str, typer.Option("--status", help="pending | approved | rejected | cancelled | all")
    ] = "pending",
    limit: LimitOption = 100,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Approval gates, oldest first."""

    async def work(orchestrator: Orchestrator) -> list[ApprovalView]:
        return await orchestrator.approvals(None if status == "all" else status, limit)

    approvals = _with_orchestrator(database_url, work)
    if as_json:
        _print_json(approvals)
    else:
        _approvals_table(approvals)


@approvals_cli.command("decide")
def approvals_decide(
    approval_id: Annotated[str, typer.Argument(help="The approval's id.")],
    decision: Annotated[str, typer.Argument(help="approve | reject")],
    note: NoteOption = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Approve (the request goes on) or reject (it fails)."""
    from app.orchestrator.exceptions import InvalidRequest

    aid = _uuid(approval_id, "APPROVAL_ID")
    if decision not in ("approve", "reject"):
        raise InvalidRequest("must be 'approve' or 'reject'", field="DECISION")
    who = _actor(actor)

    async def work(orchestrator: Orchestrator) -> RequestView:
        return await orchestrator.decide_approval(
            aid, who, "approve" if decision == "approve" else "reject", note
        )

    view = _with_orchestrator(database_url, work)
    if as_json:
        _print_json(view)
    else:
        console.print(f"request {view.id} is now {view.state}", highlight=False)


@escalations_cli.command("list")
def escalations_list(
    status: Annotated[
        str, typer.Option("--status", help="open | resolved | cancelled | all")
    ] = "open",
    limit: LimitOption = 100,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Escalations, oldest first."""

    async def work(orchestrator: Orchestrator) -> list[EscalationView]:
        return await orchestrator.escalations(None if status == "all" else status, limit)

    escalations = _with_orchestrator(database_url, work)
    if as_json:
        _print_json(escalations)
    else:
        _escalations_table(escalations)


@escalations_cli.command("resolve")
def escalations_resolve(
    escalation_id: Annotated[str, typer.Argument(help="The escalation's id.")],
    resolution: Annotated[str, typer.Argument(help="retry | skip | fail")],
    note: NoteOption = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Retry the escalated step, skip it, or fail the request."""
    from app.orchestrator.exceptions import InvalidRequest

    eid = _uuid(escalation_id, "ESCALATION_ID")
    choices: dict[str, Literal["retry", "skip", "fail"]] = {
        "retry": "retry",
        "skip": "skip",
        "fail": "fail",
    }
    if resolution not in choices:
        raise InvalidRequest("must be 'retry', 'skip' or 'fail'", field="RESOLUTION")
    who = _actor(actor)

    async def work(orchestrator: Orchestrator) -> RequestView:
        return await orchestrator.resolve_escalation(eid, who, choices[resolution], note)

    view = _with_orchestrator(database_url, work)
    if as_json:
        _print_json(view)
    else:
        console.print(f"request {view.id} is now {view.state}", highlight=False)
