"""Ids people can type: a unique prefix (6+ hex digits) names a request, approval or
escalation in every command; an ambiguous one lists the candidates, an unknown one says so."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from sqlalchemy import insert, select

from app.bootstrap import Services
from app.database import Database
from app.database.models import Approval, Escalation, Request
from app.database.types import utcnow
from app.orchestrator.exceptions import InvalidRequest, NotFound
from app.orchestrator.ids import resolve_id
from tests.cli.conftest import Run, escalated_request, gated_request

#: Ids around the prefix ``abcdef``: two inside its range, one on each side just outside.
INSIDE = (
    uuid.UUID("abcdef00-0000-4000-8000-000000000000"),
    uuid.UUID("abcdefff-ffff-4fff-bfff-ffffffffffff"),
)
OUTSIDE = (
    uuid.UUID("abcdeeff-ffff-4fff-bfff-ffffffffffff"),
    uuid.UUID("abcdf000-0000-4000-8000-000000000000"),
)


async def _add_approvals(
    database: Database, request_id: uuid.UUID, ids: tuple[uuid.UUID, ...]
) -> None:
    async with database.session() as session:
        for approval_id in ids:
            await session.execute(
                insert(Approval).values(
                    id=approval_id,
                    request_id=request_id,
                    step="requirements",
                    status="cancelled",
                    requested_at=utcnow(),
                )
            )


async def test_a_prefix_is_one_index_range_on_either_backend(
    services: Services, database: Database
) -> None:
    request_id = await gated_request(services)
    await _add_approvals(database, request_id, INSIDE + OUTSIDE)

    with pytest.raises(InvalidRequest) as ambiguous:
        await resolve_id(database, "approval", "abcdef", field="APPROVAL_ID")
    listed = set(re.findall(r"[0-9a-f-]{36}", ambiguous.value.message))
    assert listed == {str(i) for i in INSIDE}, ambiguous.value.message
    assert ambiguous.value.field == "APPROVAL_ID" and "type more" in ambiguous.value.message

    assert await resolve_id(database, "approval", "abcdef00", field="x") == INSIDE[0]
    assert await resolve_id(database, "approval", "ABCDEF-FF", field="x") == INSIDE[1]
    assert await resolve_id(database, "approval", "abcdee", field="x") == OUTSIDE[0]
    assert await resolve_id(database, "approval", "abcdf0", field="x") == OUTSIDE[1]
    assert await resolve_id(database, "request", str(request_id)[:6], field="x") == request_id

    with pytest.raises(NotFound, match="no approval id starts with abcd00"):
        await resolve_id(database, "approval", "abcd00", field="x")
    with pytest.raises(InvalidRequest, match="at least 6 hex digits"):
        await resolve_id(database, "approval", "abcde", field="x")
    with pytest.raises(InvalidRequest, match="not an id"):
        await resolve_id(database, "approval", "abcdeg", field="x")
    # A whole id is taken as it is: the command that uses it says whether it exists.
    unknown = uuid.uuid4()
    assert await resolve_id(database, "escalation", str(unknown), field="x") == unknown


def _first_column(output: str) -> list[str]:
    """The id column of a table as a person copies it: the first word of each row."""
    rows = output.split("─\n", 1)[1].splitlines()
    return [row.split()[0] for row in rows if row[:1].strip()]


async def test_every_id_argument_takes_the_short_id_a_table_shows(
    run: Run, url: str, services: Services, database: Database
) -> None:
    gated = await gated_request(services)
    escalated = await escalated_request(services)

    listed = await run("approvals", "list", "--database-url", url)
    [approval] = _first_column(listed.out)
    assert len(approval) == 8 and listed.code == 0
    decided = await run("approvals", "decide", approval, "approve", "--database-url", url)
    assert decided.code == 0, decided.err
    assert f"request {gated} is now pending" in decided.out

    [escalation] = _first_column((await run("escalations", "list", "--database-url", url)).out)
    resolved = await run(
        "escalations", "resolve", escalation, "fail", "--note", "no IRB", "--database-url", url
    )
    assert resolved.code == 0 and f"request {escalated} is now failed" in resolved.out

    # Time-ordered ids made a moment apart share their first digits: the table shows as
    # many as tell its rows apart (at least 8), and each shown id is a prefix of its own.
    shown = _first_column((await run("requests", "list", "--database-url", url)).out)
    short = {prefix: r for r in (gated, escalated) for prefix in shown if str(r).startswith(prefix)}
    assert sorted(shown) == sorted(short) and len(short) == 2
    assert all(len(prefix) >= 8 for prefix in short)
    for prefix, full in short.items():
        for command in (
            ["requests", "show", prefix, "--json"],
            ["status", prefix, "--json"],
        ):
            result = await run(*command, "--database-url", url)
            assert result.code == 0, (command, result.err)
            assert json.loads(result.out)["request"]["id"] == str(full)
        trail = await run("audit", "trail", prefix, "--json", "--database-url", url)
        assert {r["request_id"] for r in json.loads(trail.out)} == {str(full)}
        query = await run("audit", "query", "--request-id", prefix, "--json", "--database-url", url)
        assert {r["request_id"] for r in json.loads(query.out)} == {str(full)}
        verify = await run(
            "audit", "verify", "--request-id", prefix, "--json", "--database-url", url
        )
        assert json.loads(verify.out)["ok"] is True
        held = await run("retention", "hold", prefix, "--reason", "case 7", "--database-url", url)
        assert held.code == 0 and str(full) in held.out
        released = await run("retention", "release", prefix, "--database-url", url)
        assert released.code == 0 and str(full) in released.out

    await gated_request(services)
    async with database.read_session() as session:
        pending = (
            await session.execute(select(Request.id).where(Request.state == "awaiting_approval"))
        ).scalar_one()
    others = [str(r) for r in (gated, escalated)]
    typed = next(
        str(pending)[:n]
        for n in range(6, 36)
        if not any(o.startswith(str(pending)[:n]) for o in others)
    )
    cancelled = await run("requests", "cancel", typed, "--database-url", url)
    assert cancelled.code == 0 and f"request {pending} is now cancelled" in cancelled.out


async def test_an_ambiguous_or_unknown_prefix_is_one_line_naming_the_candidates(
    run: Run, url: str, services: Services, database: Database
) -> None:
    request_id = await gated_request(services)
    await _add_approvals(database, request_id, INSIDE)

    ambiguous = await run("approvals", "decide", "abcdef", "approve", "--database-url", url)
    assert ambiguous.code == 2 and ambiguous.out == ""
    assert ambiguous.err.count("\n") == 1, ambiguous.err
    assert ambiguous.err.startswith("error: APPROVAL_ID: abcdef is the start of several")
    assert all(str(i) in ambiguous.err for i in INSIDE)

    unknown = await run("escalations", "resolve", "0123456", "retry", "--database-url", url)
    assert (unknown.code, unknown.err) == (2, "error: no escalation id starts with 0123456\n")
    short = await run("requests", "show", "abc", "--database-url", url)
    assert short.code == 2 and "type at least 6 hex digits" in short.err

    async with database.read_session() as session:
        statuses = (await session.execute(select(Approval.status))).scalars().all()
        assert sorted(statuses) == ["cancelled", "cancelled", "pending"]
        assert (await session.execute(select(Escalation.id))).first() is None
