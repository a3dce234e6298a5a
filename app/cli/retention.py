"""``ledgerflow retention ...``: purge finished requests' data past its age; legal holds.

Every purge of a request's data and every hold or release appends an audit event; the
audit trail itself is never purged (see :mod:`app.ops.retention`).
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.common import (
    DatabaseUrlOption,
    JsonOption,
    Refused,
    RequestIdArgument,
    command_group,
    database_for,
    resolve,
    run_with,
    say,
    stdout,
)
from app.cli.common import actor_of as _actor

if TYPE_CHECKING:
    from app.database import Database
    from app.ops.retention import Hold, PurgeReport


retention_cli = command_group(
    "Purge old data; legal holds. Purge finished requests' payloads and files past their "
    "retention age (never the audit trail); place and release legal holds."
)

AsOption = Annotated[
    str | None,
    typer.Option("--as", help="Who acts (recorded in the audit event); default cli:$USER."),
]


def _print_purge(report: PurgeReport, as_json: bool) -> None:
    if as_json:
        body = {
            "dry_run": report.dry_run,
            "cutoffs": {c: t.isoformat() for c, t in report.cutoffs.items()},
            "purged": {c: [str(i) for i in ids] for c, ids in report.purged.items()},
            "held": {c: [str(i) for i in ids] for c, ids in report.held.items()},
            "skipped": [
                {"request_id": str(r), "category": c, "why": w} for r, c, w in report.skipped
            ],
            "files_deleted": report.files_deleted,
            "bytes_deleted": report.bytes_deleted,
            "audit_retention_years": report.audit_retention_years,
            "audit_rows_past_retention": report.audit_rows_past_retention,
        }
        sys.stdout.write(json.dumps(body, indent=2) + "\n")
        return
    verb = "would purge" if report.dry_run else "purged"
    console = stdout()
    if not report.cutoffs:
        console.print("every retention age is 0: nothing is ever purged")
    for category, cutoff in report.cutoffs.items():
        held = len(report.held.get(category, []))
        console.print(
            f"{category}: {verb} {report.count(category)} request(s) finished before "
            f"{cutoff.isoformat(timespec='seconds')}; {held} kept by a legal hold",
            highlight=False,
        )
    for request_id, category, why in report.skipped:
        say(f"skipped {category} of {request_id}: {why}")
    console.print(
        f"files: {report.files_deleted} ({report.bytes_deleted} bytes) "
        f"{'would be ' if report.dry_run else ''}deleted; audit rows are never purged "
        f"({report.audit_rows_past_retention} older than AUDIT_RETENTION_YEARS="
        f"{report.audit_retention_years})",
        highlight=False,
    )


@retention_cli.command("purge")
def retention_purge(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only report what would be purged.")
    ] = False,
    category: Annotated[
        list[str] | None,
        typer.Option(
            "--category",
            help="Only this category (payload, audio, ...); repeat.",
        ),
    ] = None,
    as_json: JsonOption = False,
    accessed_by: AsOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Purge data past its retention age.

    Payload bodies, audio and delivery files of requests finished long enough ago.
    """
    from app.ops.retention import CATEGORIES, purge

    for name in category or ():
        if name not in CATEGORIES:
            raise Refused(f"--category: {name!r} is not one of {', '.join(CATEGORIES)}")
    actor = _actor(accessed_by)

    async def work(db: Database) -> PurgeReport:
        return await purge(db, actor=actor, dry_run=dry_run, categories=category)

    _print_purge(run_with(database_for(database_url), work), as_json)


@retention_cli.command("hold")
def retention_hold(
    request_id: RequestIdArgument,
    reason: Annotated[
        str, typer.Option("--reason", help="Why (a case or matter reference; no PHI).")
    ],
    accessed_by: AsOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Place a legal hold on a request.

    Retention will not purge any of the request's data.
    """
    from app.ops.retention import place_hold

    actor = _actor(accessed_by)

    async def work(db: Database) -> Hold:
        rid = await resolve(db, "request", request_id, "REQUEST_ID")
        return await place_hold(db, rid, reason, actor)

    hold = run_with(database_for(database_url), work)
    stdout().print(
        f"request {hold.request_id} is on legal hold since "
        f"{hold.held_at.isoformat(timespec='seconds')} ({hold.reason})",
        highlight=False,
        soft_wrap=True,
    )


@retention_cli.command("release")
def retention_release(
    request_id: RequestIdArgument,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why the hold ends (optional).")
    ] = None,
    accessed_by: AsOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Release a legal hold.

    The request's data may be purged again once past its age.
    """
    from app.ops.retention import release_hold

    actor = _actor(accessed_by)

    async def work(db: Database) -> Hold:
        rid = await resolve(db, "request", request_id, "REQUEST_ID")
        return await release_hold(db, rid, actor, reason)

    hold = run_with(database_for(database_url), work)
    stdout().print(
        f"request {hold.request_id}: legal hold released (held since "
        f"{hold.held_at.isoformat(timespec='seconds')})",
        highlight=False,
    )
