"""Verify the whole ledger in a database: chains, checkpoints, and the tables beside them.

One verification, in one snapshot of the database:

1. **Checkpoints** (:mod:`app.audit.checkpoint_verify`): the stored checkpoints are checked
   as a chain of their own; the newest one's heads become anchors every chain must still
   contain, so a tail cut and rewound, or rows re-hashed after it, are found without a
   checkpoint file (one given with ``--checkpoint`` adds its anchors).
2. **The other chains** (``system``, the chain registry): scanned like any chain; they
   also tell which payload purges were recorded, which checkpoints were taken and, through
   the registry, which request chains must exist and where each ended.
3. **Request partitions** (:mod:`app.audit.reader`): each request chain is scanned
   (:mod:`app.audit.scan`) against its head on the ``requests`` row and its anchors, and
   cross-checked (:mod:`app.audit.ledger`, :mod:`app.audit.registry`) with its
   ``requests`` row and ``state_transitions`` rows. Broken chains are re-read and
   diagnosed row by row (:mod:`app.audit.diagnose`).

Partitions are independent given what steps 1 and 2 found, so on PostgreSQL they run in
worker processes sharing the snapshot (:mod:`app.audit.parallel`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.canonical import CHAIN_KEY, EVENT_TYPE, RawRow, from_typed, typed_row
from app.audit.chain import SYSTEM_CHAIN
from app.audit.checkpoint import Checkpoint, CheckpointSet, stored_checkpoints
from app.audit.checkpoint_verify import CheckpointCheck, check_checkpoints, check_recorded
from app.audit.diagnose import diagnose
from app.audit.exceptions import InvalidFilter
from app.audit.ledger import FACT_EVENTS, ChainFacts, check_request, check_transitions
from app.audit.problems import Problem, Report
from app.audit.reader import (
    Pages,
    Partition,
    audit_rows,
    chain_heads,
    chain_rows,
    pages_of,
    partitions,
    request_rows,
    transition_rows,
)
from app.audit.registry import REGISTRY_CHAINS, Registered, SystemFacts, check_registered
from app.audit.scan import Anchor, ChainScan, Head
from app.database.models import AuditLog

Progress = Callable[[int, int | None], None]


@dataclass
class Context:
    """What steps 1 and 2 found, as each request partition needs it (picklable)."""

    anchors: dict[str, list[Anchor]] = field(default_factory=dict)
    #: Requests whose payload purge the system chain records.
    purged: set[str] = field(default_factory=set)
    #: The chain registry (``None``: not checked, e.g. one request's verification).
    registered: Registered | None = None
    #: Stored event data is canonical JSON text: hash it as it is first (rows from before
    #: migration 0011 on PostgreSQL are re-encoded when that fails).
    canonical: bool = True

    def narrowed(self, partition: Partition) -> Context:
        """Only what concerns ``partition``'s chains."""

        def mine(key: str) -> bool:
            if partition.exact is not None:
                return key == partition.exact
            return partition.prefix is not None and key.startswith(partition.prefix)

        return Context(
            {k: v for k, v in self.anchors.items() if mine(k)},
            {k for k in self.purged if mine(k)},
            self.registered.narrowed(mine) if self.registered is not None else None,
            self.canonical,
        )


@dataclass
class PartitionResult:
    """Rows and chains one partition held, and what was wrong in it."""

    rows: int = 0
    chains: int = 0
    problems: list[Problem] = field(default_factory=list)


def merge_anchors(*sources: Mapping[str, list[Anchor]]) -> dict[str, list[Anchor]]:
    """Anchors from several recorders, by chain key."""
    merged: dict[str, list[Anchor]] = {}
    for source in sources:
        for key, anchors in source.items():
            merged.setdefault(key, []).extend(anchors)
    return merged


async def _diagnosed(
    pages: Pages, key: str, head: Head | None, anchors: list[Anchor], *, head_known: bool = True
) -> list[Problem]:
    rows = [typed_row(r) for r in await chain_rows(pages, key)]
    return diagnose(key, rows, head, anchors=anchors, head_known=head_known)


# --------------------------------------------------------------------------- request chains


async def verify_partition(
    pages: Pages, partition: Partition, context: Context, progress: Callable[[int], None]
) -> PartitionResult:
    """Scan and cross-check one partition of request chains (``context`` narrowed to it)."""
    result = PartitionResult()
    requests = await request_rows(pages, partition)
    facts: dict[str, ChainFacts] = {}
    broken: list[str] = []
    anchors = context.anchors
    scan: ChainScan | None = None
    chain_facts = ChainFacts()

    def close(done: ChainScan) -> None:
        request = requests.get(done.chain_key)
        head = (request.audit_seq, request.audit_head) if request is not None else None
        result.rows += done.rows
        if not done.finish(head, head_known=request is not None):
            broken.append(done.chain_key)

    async for page in audit_rows(pages, partition):
        for row in page:
            if scan is None or row[CHAIN_KEY] != scan.chain_key:
                if scan is not None:
                    close(scan)
                key = row[CHAIN_KEY]
                scan = ChainScan(key, anchors.get(key), stored_is_canonical=context.canonical)
                chain_facts = facts[key] = ChainFacts()
            scan.feed(row)
            if row[EVENT_TYPE] in FACT_EVENTS:
                chain_facts.feed(row)
        progress(len(page))
    if scan is not None:
        close(scan)
    result.chains = len(facts)
    result.problems.extend(_missing_chains(requests, facts, anchors))
    for key in broken:
        request = requests.get(key)
        head = (request.audit_seq, request.audit_head) if request is not None else None
        result.problems.extend(
            await _diagnosed(pages, key, head, anchors.get(key, []), head_known=request is not None)
        )
    transitions = await transition_rows(pages, partition)
    trusted = set(facts) - set(broken)  # a broken chain's facts prove nothing either way
    for key, request in requests.items():
        found = facts.get(key)
        if found is not None and key in trusted:
            result.problems.extend(
                check_transitions(request, found.transitions, transitions.get(key, []))
            )
            result.problems.extend(check_request(request, found, key in context.purged))
    result.problems.extend(_orphans(requests, facts))
    if context.registered is not None:
        result.problems.extend(check_registered(context.registered, requests, set(facts)))
    result.problems = unique(result.problems)
    return result


def unique(problems: Iterable[Problem]) -> list[Problem]:
    """Problems without repeats of the same kind at the same place (first one kept)."""
    seen: set[tuple[Any, ...]] = set()
    kept = []
    for p in problems:
        where = (p.chain_key, p.kind, p.table, p.row_id, p.column)
        if where not in seen:
            seen.add(where)
            kept.append(p)
    return kept


def _missing_chains(
    requests: Mapping[str, Any],
    facts: Mapping[str, ChainFacts],
    anchors: Mapping[str, list[Anchor]],
) -> list[Problem]:
    problems = []
    for key, request in requests.items():
        if key not in facts and request.audit_seq > 0:
            problems.append(
                Problem(
                    key,
                    None,
                    None,
                    "chain_missing",
                    f"the requests row records {request.audit_seq} audit row(s) "
                    "(audit_seq) but the chain has none",
                )
            )
    for key, recorded in anchors.items():
        if key not in facts and key not in requests:
            anchor = max(recorded, key=lambda a: a.seq)
            problems.append(
                Problem(
                    key,
                    None,
                    None,
                    "chain_missing",
                    f"{anchor.source} records this chain at seq {anchor.seq} but it has no rows "
                    "and no requests row (the request was erased)",
                )
            )
    return problems


def _orphans(requests: Mapping[str, Any], facts: Mapping[str, ChainFacts]) -> list[Problem]:
    return [
        Problem(
            key,
            None,
            None,
            "request_missing",
            "the chain has rows but there is no requests row for it",
            table="requests",
        )
        for key in facts
        if key not in requests
    ]


# --------------------------------------------------------------------------- other chains


async def verify_other_chains(
    pages: Pages,
    anchors: Mapping[str, list[Anchor]],
    canonical: bool,
    progress: Callable[[int], None],
) -> tuple[PartitionResult, SystemFacts]:
    """Scan the system chain, the registry and any other non-request chain."""
    result = PartitionResult()
    heads = await chain_heads(pages)
    system = SystemFacts()
    broken: list[str] = []
    seen: set[str] = set()
    scan: ChainScan | None = None

    def close(done: ChainScan) -> None:
        seen.add(done.chain_key)
        result.rows += done.rows
        if not done.finish(heads.get(done.chain_key)):
            broken.append(done.chain_key)

    async for page in audit_rows(pages, Partition()):
        for row in page:
            if scan is None or row[CHAIN_KEY] != scan.chain_key:
                if scan is not None:
                    close(scan)
                key = row[CHAIN_KEY]
                scan = ChainScan(key, anchors.get(key), stored_is_canonical=canonical)
            scan.feed(row)
            system.feed(row)
        progress(len(page))
    if scan is not None:
        close(scan)
    result.chains = len(seen)
    if system.registered is None and any(k in heads for k in REGISTRY_CHAINS):
        system.registered = Registered()
    known = {SYSTEM_CHAIN, *REGISTRY_CHAINS}
    for key in sorted(known - set(heads)):
        if key in seen or key in anchors:
            result.problems.append(
                Problem(key, None, None, "head_mismatch", "its audit_chains head row is missing")
            )
    empty_with_head = [k for k, (seq, _) in heads.items() if seq > 0 and k not in seen]
    for key in sorted(set(broken) | set(empty_with_head)):
        if key in known and key not in heads:
            continue  # named above
        result.problems.extend(
            await _diagnosed(pages, key, heads.get(key), list(anchors.get(key, [])))
        )
    return result, system


# --------------------------------------------------------------------------- the whole


async def _totals(session: AsyncSession) -> tuple[int, int]:
    """(requests, rows the heads account for): sizes the partitions and the progress bar."""
    row = (
        await session.execute(
            text(
                "SELECT (SELECT count(*) FROM requests), "
                "(SELECT coalesce(sum(audit_seq), 0) FROM requests) "
                "+ (SELECT coalesce(sum(seq), 0) FROM audit_chains)"
            )
        )
    ).one()
    return int(row[0]), int(row[1])


@dataclass
class Plan:
    """What steps 1 and 2 produced: a report so far, the context, the partitions to do."""

    report: Report
    context: Context
    partitions: list[Partition]
    expected: int


async def prepare(
    session: AsyncSession,
    request_id: uuid.UUID | None = None,
    *,
    given: CheckpointSet | None = None,
    hmac_key: str | None = None,
    allow_unsigned: bool = False,
    progress: Callable[[int], None] = lambda n: None,
) -> Plan:
    """Steps 1 and 2 in ``session``'s snapshot: checkpoints, the non-request chains."""
    pages = await pages_of(session)
    report = Report()
    count, expected = await _totals(session)
    stored = await stored_checkpoints(session)
    check = check_checkpoints(stored, key=hmac_key, allow_unsigned=allow_unsigned)
    _take(report, check, stored_label=True)
    anchors = check.anchors(check_label(stored))
    if given is not None:
        check_given = check_checkpoints(
            given.checkpoints,
            key=hmac_key,
            allow_unsigned=allow_unsigned,
            source=given.source,
            base=given.checkpoints[0].full_heads(),
            from_start=False,
        )
        check_given.heads = given.heads
        if stored and given.newest.digest == stored[-1].digest:
            report.problems.extend(check_given.problems)  # the same checkpoint: notes said
        else:
            _take(report, check_given, stored_label=False)
        anchors = merge_anchors(anchors, check_given.anchors(given.newest.label() + " (file)"))
    canonical = True  # both backends keep the canonical text as written (migration 0011)
    context = Context(anchors=anchors, canonical=canonical)
    if request_id is not None:
        key = str(request_id)
        context.purged = await _purges_of(session, request_id)
        return Plan(
            report, context.narrowed(Partition(exact=key)), [Partition(exact=key)], expected
        )
    other, system = await verify_other_chains(pages, anchors, canonical, progress)
    report.rows += other.rows
    report.chains += other.chains
    report.problems.extend(other.problems)
    report.problems.extend(check_recorded(stored, system.checkpoints))
    context.purged = system.purged
    context.registered = system.registered
    if system.registered is not None:
        context.anchors = merge_anchors(anchors, system.registered.anchors())
    return Plan(report, context, partitions(count), expected)


def check_label(stored: list[Checkpoint]) -> str:
    """How anchors from the newest stored checkpoint name it."""
    return stored[-1].label() if stored else "checkpoint"


def _take(report: Report, check: CheckpointCheck, *, stored_label: bool) -> None:
    report.problems.extend(check.problems)
    report.notes.extend(check.notes)
    if check.used is not None and (stored_label or report.checkpoint is None):
        report.checkpoint = check.used
    elif check.used is not None:
        report.notes.append(f"also held to {check.used['source']}")


async def _purges_of(session: AsyncSession, request_id: uuid.UUID) -> set[str]:
    """One request's recorded payload purge, by ``ix_audit_logs_request_id``."""
    rows = await session.execute(
        select(AuditLog.event_data).where(
            AuditLog.request_id == request_id,
            AuditLog.chain_key == SYSTEM_CHAIN,
            AuditLog.event_type == "data_purged",
        )
    )
    purged = any(data.get("category") == "payload" for (data,) in rows)
    return {str(request_id)} if purged else set()


async def verify_session(
    session: AsyncSession,
    request_id: uuid.UUID | None = None,
    *,
    given: CheckpointSet | None = None,
    hmac_key: str | None = None,
    allow_unsigned: bool = False,
    progress: Progress | None = None,
) -> Report:
    """Verify everything (or one request) in ``session``'s snapshot, partition by partition.

    Give the session a consistent snapshot (``REPEATABLE READ`` on PostgreSQL; a SQLite
    read transaction is one) or rows appended mid-scan look like ``inserted``.
    ``progress(rows_read, rows_expected)`` is called after every page.
    """
    read = 0
    expected: int | None = None

    def advance(n: int) -> None:
        nonlocal read
        read += n
        if progress is not None:
            progress(read, expected)

    plan = await prepare(
        session,
        request_id,
        given=given,
        hmac_key=hmac_key,
        allow_unsigned=allow_unsigned,
        progress=advance,
    )
    expected = plan.expected
    pages = await pages_of(session)
    report = plan.report
    for partition in plan.partitions:
        part = await verify_partition(pages, partition, plan.context.narrowed(partition), advance)
        absorb(report, part)
    if request_id is not None and report.chains == 0 and not report.problems:
        raise InvalidFilter(f"no request {request_id}", field="request_id")
    return report


def absorb(report: Report, part: PartitionResult) -> None:
    """Add one partition's counts and problems to the report."""
    report.rows += part.rows
    report.chains += part.chains
    report.problems.extend(part.problems)


async def verify_database(
    session: AsyncSession, request_id: uuid.UUID | None = None
) -> tuple[int, list[Problem]]:
    """Verify every chain (or one request's); return rows checked and problems found."""
    report = await verify_session(session, request_id)
    return report.rows, report.problems


def verify_rows(
    chain_key: str, rows: Iterable[dict[str, Any]], head_seq: int, head_hash: str
) -> list[Problem]:
    """Check one chain's rows (typed column values) against each other and a recorded head."""
    typed = sorted(rows, key=lambda r: r["seq"])
    raw: list[RawRow] = [from_typed(r) for r in typed]
    scan = ChainScan(chain_key)
    for row in raw:
        scan.feed(row)
    if scan.finish((head_seq, head_hash)):
        return []
    return diagnose(chain_key, typed, (head_seq, head_hash))


__all__ = [
    "Context",
    "Partition",
    "PartitionResult",
    "Problem",
    "Report",
    "absorb",
    "merge_anchors",
    "prepare",
    "verify_database",
    "verify_other_chains",
    "verify_partition",
    "verify_rows",
    "verify_session",
]
