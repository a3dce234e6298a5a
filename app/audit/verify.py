"""Re-compute hash chains and name every broken link.

A chain is read in ``seq`` order. For each row: its ``hash`` must equal the hash of its
content (else it was **modified**); its ``prev_hash`` must equal the previous row's hash
and its ``seq`` must follow on (else a row was **deleted**, **inserted** or **reordered**);
the last row must be the chain head recorded on the request row or in ``audit_chains``
(else the tail was **deleted** or rows were **appended** outside the application).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.chain import GENESIS, SYSTEM_CHAIN, row_hash
from app.database.models import AuditChain, AuditLog, Request


@dataclass(frozen=True)
class Problem:
    """One broken link: which chain, which row (if any), what is wrong."""

    chain_key: str
    row_id: uuid.UUID | None
    seq: int | None
    kind: str
    detail: str

    def __str__(self) -> str:
        where = f"row {self.row_id} (seq {self.seq})" if self.row_id else "chain head"
        return f"{self.chain_key}: {where}: {self.kind}: {self.detail}"


def verify_rows(
    chain_key: str, rows: Iterable[dict[str, Any]], head_seq: int, head_hash: str
) -> list[Problem]:
    """Check one chain's rows (in ``seq`` order) against each other and the recorded head."""
    problems: list[Problem] = []
    prev_hash = GENESIS
    expected_seq = 1
    last: dict[str, Any] | None = None
    for row in rows:
        rid, seq = row["id"], row["seq"]
        if row_hash(row) != row["hash"]:
            problems.append(Problem(chain_key, rid, seq, "modified", "content does not match hash"))
        if seq != expected_seq:
            kind = "deleted" if seq > expected_seq else "reordered"
            problems.append(
                Problem(chain_key, rid, seq, kind, f"expected seq {expected_seq}, found {seq}")
            )
        if row["prev_hash"] != prev_hash:
            problems.append(
                Problem(chain_key, rid, seq, "broken_link", "prev_hash is not the previous hash")
            )
        prev_hash = row["hash"]
        expected_seq = seq + 1
        last = row
    last_seq = last["seq"] if last else 0
    last_hash = last["hash"] if last else ""
    if (last_seq, last_hash) != (head_seq, head_hash):
        kind = "deleted" if last_seq < head_seq else "head_mismatch"
        problems.append(
            Problem(
                chain_key,
                None,
                None,
                kind,
                f"chain ends at seq {last_seq} but its head says seq {head_seq}",
            )
        )
    return problems


_COLUMNS = (
    AuditLog.id,
    AuditLog.chain_key,
    AuditLog.seq,
    AuditLog.request_id,
    AuditLog.event_type,
    AuditLog.severity,
    AuditLog.actor,
    AuditLog.agent_id,
    AuditLog.occurred_at,
    AuditLog.event_data,
    AuditLog.prev_hash,
    AuditLog.hash,
)


async def _heads(
    session: AsyncSession, request_id: uuid.UUID | None
) -> AsyncIterator[tuple[str, int, str]]:
    if request_id is None:
        for chain in (await session.execute(select(AuditChain))).scalars():
            yield chain.chain_key, chain.seq, chain.head_hash
    query = select(Request.id, Request.audit_seq, Request.audit_head).order_by(Request.id)
    if request_id is not None:
        query = query.where(Request.id == request_id)
    for rid, seq, head in (await session.execute(query)).all():
        yield str(rid), seq, head


async def verify_database(
    session: AsyncSession, request_id: uuid.UUID | None = None
) -> tuple[int, list[Problem]]:
    """Verify every chain (or one request's); return rows checked and problems found."""
    checked = 0
    problems: list[Problem] = []
    async for chain_key, head_seq, head_hash in _heads(session, request_id):
        result = await session.execute(
            select(*_COLUMNS).where(AuditLog.chain_key == chain_key).order_by(AuditLog.seq)
        )
        rows = [dict(row._mapping) for row in result]
        checked += len(rows)
        problems.extend(verify_rows(chain_key, rows, head_seq, head_hash))
    return checked, problems


__all__ = ["SYSTEM_CHAIN", "Problem", "verify_database", "verify_rows"]
