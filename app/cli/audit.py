"""``ledgerflow audit ...``: query, verify, checkpoint and export the audit trail."""

from __future__ import annotations

import contextlib
import re
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli.common import (
    DatabaseUrlOption,
    JsonOption,
    Refused,
    RequestIdArgument,
    actor_of,
    command_group,
    database_for,
    id_shortener,
    print_json,
    progress_bar,
    resolve,
    run_with,
    say,
    stdout,
    writable_file,
)
from app.cli.tables import Column, add_row, new_table

if TYPE_CHECKING:
    from app.audit import (
        AuditFilter,
        AuditPage,
        AuditRecord,
        Checkpoint,
        CheckpointSet,
        Report,
    )
    from app.database import Database

audit_cli = command_group(
    "Query, verify, export the audit trail. Every use of it is itself audited: query, trail, "
    "export, checkpoint and verify each append an access event."
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
    str | None,
    typer.Option("--request-id", help="Only this request's events (id or 6+ hex digit prefix)."),
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
    from app.audit import InvalidFilter

    try:
        yield
    except InvalidFilter as exc:
        option = names.get(exc.field) or _AUDIT_OPTIONS.get(exc.field, exc.field)
        raise InvalidFilter(exc.detail, field=option) from None


@dataclass(frozen=True)
class _Filters:
    """The filter options as typed; the request id may be a prefix until resolved."""

    request_id: str | None = None
    actor: str | None = None
    agent: str | None = None
    event_type: tuple[str, ...] = ()
    severity: str | None = None
    since: str | None = None
    until: str | None = None
    patient_id: str | None = None

    def check(self) -> None:
        """Refuse a bad filter before any database work (the request id is checked later)."""
        self.parse(None)

    def parse(self, request_id: uuid.UUID | None) -> AuditFilter:
        """The filter, with the request id already resolved from its prefix."""
        from app.audit import AuditFilter

        with _audit_errors():
            return AuditFilter.parse(
                request_id=request_id,
                actor=self.actor,
                agent_id=self.agent,
                event_types=self.event_type,
                severity=self.severity,
                since=self.since,
                until=self.until,
                patient_id=self.patient_id,
            )

    async def resolve(self, db: Database) -> AuditFilter:
        """The filter, after turning a request id prefix into the request's id."""
        rid = None
        if self.request_id is not None:
            rid = await resolve(db, "request", self.request_id, "--request-id")
        return self.parse(rid)


def _output_format(fmt: str | None, as_json: bool, *, default: str, table: bool) -> str:
    """``--json`` is ``--format json``; asking for two different formats is refused."""
    from app.audit.export import check_format

    if as_json and fmt not in (None, "json"):
        raise Refused(f"--json: not with --format {fmt}")
    chosen = "json" if as_json else (fmt or default)
    with _audit_errors():
        return check_format(chosen, extra=(_TABLE,) if table else ())


_DIGEST = re.compile(r"^[0-9a-f]{32,}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _brief(value: Any) -> Any:
    # A table shows digests and ids as far as people compare them; --json has them whole.
    if isinstance(value, str) and _DIGEST.match(value):
        return value[:12] + "…"
    if isinstance(value, str) and _UUID.match(value):
        return value[:8]
    return value


def _details(data: dict[str, Any]) -> str:
    return " ".join(
        f"{k}={_brief(v)}" for k, v in sorted(data.items()) if v not in (None, "", [], {})
    )


def _print_records(
    records: Sequence[AuditRecord], fmt: str, title: str | None = None, *, chains: bool = True
) -> None:
    """The records in ``fmt``; as a table, with the chain column only when chains differ."""
    from app.audit import render
    from app.audit.chain import format_timestamp

    if fmt != _TABLE:
        sys.stdout.write(render(records, fmt))
        return
    table = new_table(
        title,
        [
            Column("occurred at (UTC)"),
            Column("chain:seq" if chains else "seq", whole=True),
            Column("event", max_width=22),
            Column("actor", max_width=18),
            Column("details", wrap=True),
        ],
    )
    shorten = id_shortener(r.chain_key for r in records if _UUID.match(r.chain_key))
    for r in records:
        chain = shorten(r.chain_key) if _UUID.match(r.chain_key) else r.chain_key
        agent = {"agent": r.agent_id} if r.agent_id else {}
        severity = {} if r.severity == "info" else {"severity": r.severity}
        add_row(
            table,
            format_timestamp(r.occurred_at)[:19].replace("T", " "),
            f"{chain}:{r.seq}" if chains else str(r.seq),
            r.event_type,
            r.actor,
            _details({**severity, **agent, **r.event_data}),
        )
    stdout().print(table)


FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format",
        help="table|json|jsonl|csv|fhir|fhir-ndjson (default table).",
        show_default=False,
    ),
]


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
    fmt: FormatOption = None,
    as_json: JsonOption = False,
    accessed_by: AsOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Print a page of audit events.

    Those matching the filters, keyset-paginated (--cursor continues).
    """
    from app.audit import AuditAccess

    filters = _Filters(
        request_id, actor, agent, tuple(event_type or ()), severity, since, until, patient_id
    )
    filters.check()
    fmt = _output_format(fmt, as_json, default=_TABLE, table=True)
    who = actor_of(accessed_by)

    async def work(db: Database) -> AuditPage:
        audit_filter = await filters.resolve(db)
        with _audit_errors():
            return await AuditAccess(db, who).query(
                audit_filter, cursor=cursor, limit=limit, newest_first=newest_first, fmt=fmt
            )

    page = run_with(database_for(database_url), work)
    _print_records(page.items, fmt)
    if page.next_cursor:
        say(f"next page: --cursor {page.next_cursor}")


@audit_cli.command("trail")
def audit_trail(
    request_id: RequestIdArgument,
    fmt: FormatOption = None,
    as_json: JsonOption = False,
    accessed_by: AsOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Print one request's audit timeline, oldest first."""
    from app.audit import AuditAccess

    fmt = _output_format(fmt, as_json, default=_TABLE, table=True)
    who = actor_of(accessed_by)

    async def work(db: Database) -> tuple[uuid.UUID, list[AuditRecord]]:
        rid = await resolve(db, "request", request_id, "REQUEST_ID")
        with _audit_errors(request_id="REQUEST_ID"):
            return rid, await AuditAccess(db, who).trail(rid, fmt=fmt)

    rid, records = run_with(database_for(database_url), work)
    mixed = len({r.chain_key for r in records}) > 1  # a stale result sits on the system chain
    _print_records(records, fmt, title=f"audit trail of request {rid}", chains=mixed)


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
    """Export every matching audit event.

    Oldest first, streamed in constant memory.
    """
    from app.audit import AuditAccess

    filters = _Filters(
        request_id, actor, agent, tuple(event_type or ()), severity, since, until, patient_id
    )
    filters.check()
    fmt = _output_format(fmt, False, default="jsonl", table=False)
    who = actor_of(accessed_by)
    if output is not None:
        writable_file(output, "--output")

    async def work(db: Database) -> int:
        audit_filter = await filters.resolve(db)
        access = AuditAccess(db, who)
        if output is None:
            return await access.export(audit_filter, sys.stdout, fmt)
        with (
            output.open("w", encoding="utf-8", newline="") as out,
            progress_bar(f"exporting to {output.name}") as report,
        ):
            return await access.export(audit_filter, out, fmt, progress=report)

    count = run_with(database_for(database_url), work)
    say(f"exported {count} audit events ({fmt})")


@audit_cli.command("verify")
def audit_verify(
    request_id: RequestIdOption = None,
    checkpoint: Annotated[
        str | None,
        typer.Option(
            "--checkpoint",
            help="Also hold the chains to this checkpoint: a stored digest, a checkpoint "
            "file, or a folder of them (CHECKPOINT_DIR). Needed offline.",
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="Verify this export (.jsonl/.csv/.json) offline instead."),
    ] = None,
    partial: Annotated[
        bool,
        typer.Option(
            "--partial",
            help="With --file: the export was filtered on purpose; report chains it lacks "
            "as not checked instead of missing.",
        ),
    ] = False,
    allow_unsigned: Annotated[
        bool,
        typer.Option(
            "--allow-unsigned",
            help="Accept an unsigned checkpoint although AUDIT_HMAC_KEY is set (a note).",
        ),
    ] = False,
    as_json: JsonOption = False,
    accessed_by: AsOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Verify the ledger.

    Every chain (held to the newest checkpoint), the checkpoints, the chain registry and the
    tables beside the chains; prints OK or each problem; exits 0 if clean, else 1.
    """
    from app.audit import AuditAccess, load_checkpoints, verify_file
    from app.audit.checkpoint import configured_hmac_key, looks_like_digest

    if file is not None and request_id is not None:
        raise Refused("--request-id: not with --file (the file holds what was exported)")
    if partial and file is None:
        raise Refused("--partial: only with --file (a filtered export)")
    loaded: CheckpointSet | str | None = None
    if checkpoint is not None:
        path = Path(checkpoint)
        if looks_like_digest(checkpoint) and not path.exists():
            loaded = checkpoint.lower()
        else:
            loaded = load_checkpoints(path)
    key = configured_hmac_key()
    if file is not None:
        if isinstance(loaded, str):
            raise Refused("--checkpoint: offline verification needs the checkpoint file")
        if not file.is_file():
            raise Refused(f"--file: {file} is not a file")
        report = verify_file(
            file, loaded, hmac_key=key, allow_unsigned=allow_unsigned, partial=partial
        )
    else:
        who = actor_of(accessed_by)

        async def work(db: Database) -> Report:
            rid = None
            if request_id is not None:
                rid = await resolve(db, "request", request_id, "--request-id")
            with _audit_errors():
                access = AuditAccess(db, who)
                with progress_bar("verifying audit rows") as report:
                    return await access.verify(
                        rid, loaded, hmac_key=key, allow_unsigned=allow_unsigned, progress=report
                    )

        report = run_with(database_for(database_url), work)
    _print_report(report, as_json)
    if not report.ok:
        raise typer.Exit(1)


def _print_report(report: Report, as_json: bool) -> None:
    import json

    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
        return
    used = report.checkpoint
    if used is not None:
        label = f"#{used['seq']}" if used.get("seq") else used["digest"][:12] + "…"
        say(
            f"held to checkpoint {label} ({used['digest'][:12]}…, {used['created_at']}, "
            f"{'signed' if used['signed'] else 'unsigned'}, from {used['source']})"
        )
    else:
        say("note: no checkpoint to hold the chains to yet")
    for note in report.notes:
        say(f"note: {note}")
    out = stdout()
    for problem in report.problems:
        out.print(
            f"{problem.kind.upper()}: {problem}", highlight=False, soft_wrap=True, markup=False
        )
    if report.ok:
        out.print(f"OK: {report.rows} rows in {report.chains} chains verified", highlight=False)
    else:
        out.print(
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
    as_json: JsonOption = False,
    accessed_by: AsOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Record a checkpoint and print its digest.

    Chained to the one before; -o also writes the file with every head: store it outside
    the database.
    """
    from app.audit import AuditAccess
    from app.audit.checkpoint import configured_hmac_key

    key = configured_hmac_key() if sign else None
    who = actor_of(accessed_by)
    if output is not None:
        # Refuse before the checkpoint is recorded, not after: a bad path changes nothing.
        writable_file(output, "--output")
        if output.is_dir():
            raise Refused(f"--output: {output} is a folder, not a file name")

    async def work(db: Database) -> Checkpoint:
        return await AuditAccess(db, who).checkpoint(key)

    made = run_with(database_for(database_url), work)
    if output is not None:
        output.write_text(made.to_file(), encoding="utf-8")
    if as_json:
        print_json(
            {
                "seq": made.seq,
                "digest": made.digest,
                "prev_digest": made.prev_digest,
                "created_at": made.created_at.isoformat(),
                "chains": made.chain_count,
                "changed": len(made.heads),
                "signature": made.signature,
                "file": str(output) if output is not None else None,
            }
        )
        return
    sys.stdout.write(made.digest + "\n")
    signed = f"signed {made.signature}" if made.signature else "unsigned (no AUDIT_HMAC_KEY)"
    say(
        f"checkpoint #{made.seq} of {made.chain_count} chains ({len(made.heads)} changed) at "
        f"{made.created_at.isoformat()}; {signed}" + (f"; written to {output}" if output else "")
    )
