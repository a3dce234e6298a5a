"""``ledgerflow approvals list|decide`` and ``escalations list|resolve``: the human side.

The tables show what a reviewer decides on: an approval's summary in one line (research
criteria; a transcript's confidence) and an escalation's reason and detail.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import typer

from app.cli.common import (
    DatabaseUrlOption,
    JsonOption,
    WideOption,
    actor_of,
    command_group,
    id_argument,
    id_shortener,
    one_of,
    print_json,
    resolve,
    run_orchestrator,
    run_reader,
    stdout,
)
from app.cli.tables import Column, add_row, new_table, show, when

if TYPE_CHECKING:
    from app.orchestrator.engine import Orchestrator
    from app.orchestrator.reads import Reader
    from app.orchestrator.views import ApprovalView, EscalationView, RequestView

approvals_cli = command_group("List and decide approval gates.")
escalations_cli = command_group("List and resolve escalations.")

ActorOption = Annotated[
    str | None,
    typer.Option("--as", help="Who decides (recorded in the audit trail); default cli:$USER."),
]
NoteOption = Annotated[str | None, typer.Option("--note", help="A note for the record.")]
LimitOption = Annotated[int, typer.Option("--limit", min=1, max=500, help="At most this many.")]


def print_approvals(approvals: list[ApprovalView], wide: bool, title: str = "approvals") -> None:
    """Approvals as a table: id, request, step, when, and the summary in one line.

    The status column is shown when the list mixes statuses (``--status all``) or ``--wide``.
    """
    from app.agents.summaries import approval_line

    statuses = wide or len({a.status for a in approvals}) > 1
    columns = [Column("id", whole=True), Column("request"), Column("step")]
    columns += [Column("status")] if statuses else []
    columns += [Column("requested (UTC)"), Column("what to decide", wrap=True)]
    if wide:
        columns += [Column("decided by"), Column("note", wrap=True)]
    table = new_table(title, columns)
    ids = id_shortener((a.id for a in approvals), wide)
    requests = id_shortener((a.request_id for a in approvals), wide)
    for a in approvals:
        row = [ids(a.id), requests(a.request_id), a.step]
        row += [a.status] if statuses else []
        row += [when(a.requested_at, seconds=False), approval_line(a.summary)]
        if wide:
            row += [a.decided_by or "", a.note or ""]
        add_row(table, *row)
    show(table, wide=wide)


def print_escalations(
    escalations: list[EscalationView], wide: bool, title: str = "escalations"
) -> None:
    """Escalations as a table: id, request, step, when, and why (reason, then detail)."""
    from app.agents.summaries import escalation_line

    statuses = wide or len({x.status for x in escalations}) > 1
    columns = [Column("id", whole=True), Column("request"), Column("step")]
    columns += [Column("status")] if statuses else []
    columns += [Column("opened (UTC)"), Column("why", wrap=True)]
    if wide:
        columns += [Column("resolution"), Column("note", wrap=True)]
    table = new_table(title, columns)
    ids = id_shortener((x.id for x in escalations), wide)
    requests = id_shortener((x.request_id for x in escalations), wide)
    for x in escalations:
        row = [ids(x.id), requests(x.request_id), x.step]
        row += [x.status] if statuses else []
        detail = escalation_line(x.reason, x.detail)
        row += [when(x.opened_at, seconds=False), f"{x.reason}: {detail}" if detail else x.reason]
        if wide:
            row += [x.resolution or "", x.note or ""]
        add_row(table, *row)
    show(table, wide=wide)


@approvals_cli.command("list")
def approvals_list(
    status: Annotated[
        str, typer.Option("--status", help="pending | approved | rejected | cancelled | all")
    ] = "pending",
    limit: LimitOption = 100,
    wide: WideOption = False,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """List approval gates, oldest first.

    Each with what it asks the reviewer to decide (research criteria, a transcript's
    confidence).
    """
    one_of(status, ("pending", "approved", "rejected", "cancelled", "all"), "--status")

    async def work(reader: Reader) -> list[ApprovalView]:
        return await reader.approvals(None if status == "all" else status, limit)

    approvals = run_reader(database_url, work)
    if as_json:
        print_json(approvals)
    else:
        print_approvals(approvals, wide, title=f"approvals ({status}), oldest first")


@approvals_cli.command("decide")
def approvals_decide(
    approval_id: Annotated[str, id_argument("approval", "APPROVAL_ID")],
    decision: Annotated[str, typer.Argument(metavar="DECISION", help="approve | reject")],
    note: NoteOption = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Approve (the request goes on) or reject (it fails)."""
    from app.orchestrator.exceptions import InvalidRequest

    if decision not in ("approve", "reject"):
        raise InvalidRequest("must be 'approve' or 'reject'", field="DECISION")
    choice: Literal["approve", "reject"] = "approve" if decision == "approve" else "reject"
    who = actor_of(actor)

    async def work(orchestrator: Orchestrator) -> RequestView:
        aid = await resolve(orchestrator.database, "approval", approval_id, "APPROVAL_ID")
        return await orchestrator.decide_approval(aid, who, choice, note)

    view = run_orchestrator(database_url, work)
    if as_json:
        print_json(view)
    else:
        stdout().print(f"request {view.id} is now {view.state}", highlight=False)


@escalations_cli.command("list")
def escalations_list(
    status: Annotated[
        str, typer.Option("--status", help="open | resolved | cancelled | all")
    ] = "open",
    limit: LimitOption = 100,
    wide: WideOption = False,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """List escalations, oldest first.

    Each with why its request stopped: the reason and the detail.
    """
    one_of(status, ("open", "resolved", "cancelled", "all"), "--status")

    async def work(reader: Reader) -> list[EscalationView]:
        return await reader.escalations(None if status == "all" else status, limit)

    escalations = run_reader(database_url, work)
    if as_json:
        print_json(escalations)
    else:
        print_escalations(escalations, wide, title=f"escalations ({status}), oldest first")


@escalations_cli.command("resolve")
def escalations_resolve(
    escalation_id: Annotated[str, id_argument("escalation", "ESCALATION_ID")],
    resolution: Annotated[str, typer.Argument(metavar="RESOLUTION", help="retry | skip | fail")],
    note: NoteOption = None,
    actor: ActorOption = None,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Retry the escalated step, skip it, or fail the request."""
    from app.orchestrator.exceptions import InvalidRequest

    choices: dict[str, Literal["retry", "skip", "fail"]] = {
        "retry": "retry",
        "skip": "skip",
        "fail": "fail",
    }
    if resolution not in choices:
        raise InvalidRequest("must be 'retry', 'skip' or 'fail'", field="RESOLUTION")
    who = actor_of(actor)

    async def work(orchestrator: Orchestrator) -> RequestView:
        eid = await resolve(orchestrator.database, "escalation", escalation_id, "ESCALATION_ID")
        return await orchestrator.resolve_escalation(eid, who, choices[resolution], note)

    view = run_orchestrator(database_url, work)
    if as_json:
        print_json(view)
    else:
        stdout().print(f"request {view.id} is now {view.state}", highlight=False)
