"""``ledgerflow audit ...``: query, verify, checkpoint and export the audit trail."""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from app.audit import (
    AuditAccess,
    AuditFilter,
    AuditPage,
    AuditRecord,
    Checkpoint,
    InvalidFilter,
    Report,
    read_checkpoint_file,
    render,
    verify_file,
)
from app.audit.chain import format_timestamp
from app.audit.checkpoint import configured_hmac_key, looks_like_digest
from app.audit.export import check_format
from app.cli.common import DatabaseUrlOption, Refused, console, err_console, progress_bar
from app.cli.common import actor_of as _actor
from app.cli.common import database_for as _database
from app.cli.common import run_with as _run
from app.database import Database

audit_cli = typer.Typer(
    help="Query, verify, checkpoint and export the audit trail (every use is itself audited).",
    no_args_is_help=True,
)

#: Filter field → the CLI option that sets it, so errors name what the operator typed.
_AUDIT_OPTIONS = {
    "request_id": "--request-id",
    "actor": "--actor",
    "agent_id": "--agent",
    "event_types": "--event-type",
    "severity": "--severity",
    "since": "--since",
    "until": "--until",
    "patient_id": "--patient-id",
    "cursor": "--cursor",
    "limit": "--limit",
    "format": "--format",
    "accessed_by": "--as",
}
_TABLE = "table"

RequestIdOption = Annotated[
    str | None, typer.Option("--request-id", help="Only this request's events.")
]
ActorFilterOption = Annotated[
    str | None, typer.Option("--actor", help="Only events by this actor (service or person).")
]
AgentOption = Annotated[str | None, typer.Option("--agent", help="Only events of this agent id.")]
EventTypeOption = Annotated[
    list[str] | None,
    typer.Option("--event-type", help="Only this event type (repeat for several)."),
]
SeverityOption = Annotated[
    str | None, typer.Option("--severity", help="Only this severity: info|warning|error|critical.")
]
SinceOption = Annotated[
    str | None, typer.Option("--since", help="From this ISO 8601 time (inclusive, UTC if no zone).")
]
UntilOption = Annotated[
    str | None, typer.Option("--until", help="Before this ISO 8601 time (exclusive).")
]
PatientOption = Annotated[
    str | None,
    typer.Option("--patient-id", help="Only requests about this patient (transcriptions)."),
]
AsOption = Annotated[
    str | None,
    typer.Option("--as", help="Who is asking (recorded in the access event); default cli:$USER."),
]


@contextlib.contextmanager
def _audit_errors(**names: str) -> Iterator[None]:
    """Re-raise audit input errors with the CLI option's name instead of the field's."""
    try:
        yield
    except InvalidFilter as exc:
        option = names.get(exc.field) or _AUDIT_OPTIONS.get(exc.field, exc.field)
        raise InvalidFilter(exc.detail, field=option) from None


def _audit_filter(
    request_id: str | None,
    actor: str | None,
    agent: str | None,
    event_type: list[str] | None,
    severity: str | None,
    since: str | None,
    until: str | None,
    patient_id: str | None,
) -> AuditFilter:
    with _audit_errors():
        return AuditFilter.parse(
            request_id=request_id,
            actor=actor,
            agent_id=agent,
            event_types=tuple(event_type or ()),
            severity=severity,
            since=since,
            until=until,
            patient_id=patient_id,
        )


def _check_audit_format(fmt: str, *, table: bool) -> str:
    with _audit_errors():
        return check_format(fmt, extra=(_TABLE,) if table else ())


def _summary(data: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(data.items()) if v not in (None, "", [], {}))


def _print_records(records: Sequence[AuditRecord], fmt: str, title: str | None = None) -> None:
    if fmt != _TABLE:
        sys.stdout.write(render(records, fmt))
        return
    table = Table(title=title, show_lines=False)
    # Fold rather than truncate: a cut-off id or digest is worse than a taller table.
    for column in ("occurred at (UTC)", "chain:seq", "event", "severity", "actor", "agent"):
        table.add_column(column, overflow="fold")
    table.add_column("details", overflow="fold")
    for r in records:
        chain = "system" if r.chain_key == "system" else r.chain_key[:8]
        table.add_row(
            format_timestamp(r.occurred_at),
            f"{chain}:{r.seq}",
            r.event_type,
            r.severity,
            r.actor,
            r.agent_id or "",
            _summary(r.event_data),
        )
    console.print(table)


@audit_cli.command("query")
def audit_query(
    request_id: RequestIdOption = None,
    actor: ActorFilterOption = None,
    agent: AgentOption = None,
    event_type: EventTypeOption = None,
    severity: SeverityOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    patient_id: PatientOption = None,
    limit: Annotated[int, typer.Option("--limit", help="Rows per page (1-1000).")] = 50,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="Continue after the page that printed it.")
    ] = None,
    newest_first: Annotated[bool, typer.Option("--newest-first", help="Newest first.")] = False,
    fmt: Annotated[
        str, typer.Option("--format", help="table|json|jsonl|csv|fhir|fhir-ndjson")
    ] = _TABLE,
    accessed_by: AsOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Print one page of audit events matching the filters (keyset-paginated)."""
    audit_filter = _audit_filter(
        request_id, actor, agent, event_type, severity, since, until, patient_id
    )
    fmt = _check_audit_format(fmt, table=True)
    database = _database(database_url)

    async def work(db: Database) -> AuditPage:
        with _audit_errors():
            access = AuditAccess(db, _actor(accessed_by))
            return await access.query(
                audit_filter, cursor=cursor, limit=limit, newest_first=newest_first, fmt=fmt
            )

    page = _run(database, work)
    _print_records(page.items, fmt)
    if page.next_cursor:
        err_console.print(
            f"next page: --cursor {page.next_cursor}", highlight=False, soft_wrap=True
        )


@audit_cli.command("trail")
def audit_trail(
    request_id: Annotated[str, typer.Argument(help="The request's id.")],
    fmt: Annotated[
        str, typer.Option("--format", help="table|json|jsonl|csv|fhir|fhir-ndjson")
    ] = _TABLE,
    accessed_by: AsOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Print one request's audit timeline, oldest first."""
    try:
        rid = uuid.UUID(request_id)
    except ValueError:
        raise InvalidFilter(f"{request_id!r} is not a UUID", field="REQUEST_ID") from None
    fmt = _check_audit_format(fmt, table=True)
    database = _database(database_url)

    async def work(db: Database) -> list[AuditRecord]:
        with _audit_errors(request_id="REQUEST_ID"):
            return await AuditAccess(db, _actor(accessed_by)).trail(rid, fmt=fmt)

    records = _run(database, work)
    _print_records(records, fmt, title=f"request {rid}")


@audit_cli.command("export")
def audit_export(
    request_id: RequestIdOption = None,
    actor: ActorFilterOption = None,
    agent: AgentOption = None,
    event_type: EventTypeOption = None,
    severity: SeverityOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    patient_id: PatientOption = None,
    fmt: Annotated[str, typer.Option("--format", help="json|jsonl|csv|fhir|fhir-ndjson")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    accessed_by: AsOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Stream every matching audit event, oldest first, in constant memory."""
    audit_filter = _audit_filter(
        request_id, actor, agent, event_type, severity, since, until, patient_id
    )
    fmt = _check_audit_format(fmt, table=False)
    database = _database(database_url)

    async def work(db: Database) -> int:
        access = AuditAccess(db, _actor(accessed_by))
        if output is None:
            return await access.export(audit_filter, sys.stdout, fmt)
        with (
            output.open("w", encoding="utf-8", newline="") as out,
            progress_bar(f"exporting to {output.name}") as report,
        ):
            return await access.export(audit_filter, out, fmt, progress=report)

    count = _run(database, work)
    err_console.print(f"exported {count} audit events ({fmt})", highlight=False)


@audit_cli.command("verify")
def audit_verify(
    request_id: RequestIdOption = None,
    checkpoint: Annotated[
        str | None,
        typer.Option("--checkpoint", help="A checkpoint digest or checkpoint file to hold to."),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="Verify this export (.jsonl/.csv/.json) offline instead."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    accessed_by: AsOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Re-compute every hash chain; print OK or each broken link; exit 0 if clean, else 1."""
    rid = _audit_filter(request_id, None, None, None, None, None, None, None).request_id
    if file is not None and rid is not None:
        raise Refused("--request-id: not with --file (the file holds what was exported)")
    loaded: Checkpoint | str | None = None
    if checkpoint is not None:
        loaded = checkpoint.lower() if looks_like_digest(checkpoint) else None
        if loaded is None:
            loaded = read_checkpoint_file(Path(checkpoint))
    key = configured_hmac_key()
    if file is not None:
        if isinstance(loaded, str):
            raise Refused("--checkpoint: offline verification needs the checkpoint file")
        report = verify_file(file, loaded, hmac_key=key)
    else:
        database = _database(database_url)

        async def work(db: Database) -> Report:
            with _audit_errors():
                access = AuditAccess(db, _actor(accessed_by))
                with progress_bar("verifying audit rows") as report:
                    return await access.verify(rid, loaded, hmac_key=key, progress=report)

        report = _run(database, work)
    _print_report(report, as_json)
    if not report.ok:
        raise typer.Exit(1)


def _print_report(report: Report, as_json: bool) -> None:
    import json

    if as_json:
        body = {
            "ok": report.ok,
            "rows": report.rows,
            "chains": report.chains,
            "problems": [p.to_json() for p in report.problems],
            "notes": report.notes,
        }
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
        return
    for note in report.notes:
        err_console.print(f"note: {note}", highlight=False, soft_wrap=True)
    for problem in report.problems:
        console.print(f"{problem.kind.upper()}: {problem}", highlight=False, soft_wrap=True)
    if report.ok:
        console.print(f"OK: {report.rows} rows in {report.chains} chains verified")
    else:
        console.print(
            f"FAILED: {len(report.problems)} problem(s) in {report.rows} rows "
            f"of {report.chains} chains",
            highlight=False,
        )


@audit_cli.command("checkpoint")
def audit_checkpoint(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the checkpoint file here.")
    ] = None,
    sign: Annotated[
        bool, typer.Option("--sign/--no-sign", help="HMAC-sign with AUDIT_HMAC_KEY when set.")
    ] = True,
    accessed_by: AsOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Record a digest over every chain head and print it (store it outside the database)."""
    key = configured_hmac_key() if sign else None
    database = _database(database_url)

    async def work(db: Database) -> Checkpoint:
        return await AuditAccess(db, _actor(accessed_by)).checkpoint(key)

    made = _run(database, work)
    if output is not None:
        output.write_text(made.to_file(), encoding="utf-8")
    sys.stdout.write(made.digest + "\n")
    signed = f"signed {made.signature}" if made.signature else "unsigned (no AUDIT_HMAC_KEY)"
    err_console.print(
        f"checkpoint of {len(made.heads)} chains at {made.created_at.isoformat()}; {signed}"
        + (f"; written to {output}" if output else ""),
        highlight=False,
        soft_wrap=True,
    )
