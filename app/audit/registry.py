"""The chain registry: every request chain's creation and end, on the record.

Without it, a superuser who deletes a whole request (its ``requests`` row, its chain and
its other rows) leaves nothing behind to notice, and a finished chain cut back with its
head rewound looks whole. So every batch that creates or ends request chains also appends
one ``chains_registered`` event to a **registry chain**: the ids of the chains created (a
submit is a transition from no state) and, for each request that ended (a transition into
a terminal state), its terminal head ``(seq, hash)`` and state. Registry chains are hash
chains like any other (heads in ``audit_chains``, covered by verification and by every
checkpoint), so the registry itself cannot be edited unnoticed.

**Writing** (:func:`register`, called once per batch by the write path, in the batch's
transaction): there are :data:`REGISTRY_SHARDS` registry chains and a batch takes
whichever head row is free (PostgreSQL ``FOR UPDATE SKIP LOCKED``), so concurrent commits
of several worker processes and API submits never queue on one row; only when every shard
is taken does a batch wait for one. Lock order: request rows by id, then gates, then the
registry and system heads, so the registry lock is the last one a transaction takes and is
held only until its commit.

**Reading** (verification): :class:`Registered` collects what the registry chains recorded
and :func:`check_registered` holds a partition's ``requests`` rows and chains to it: a
registered chain with no rows and no request (``chain_missing``, ``request_missing``), a
request or chain never registered or an end not registered (``unregistered``), a terminal
state that differs (``registry_mismatch``); each ended chain must still contain its
registered terminal head (an anchor, like a checkpoint's), so rows appended after the end
(e.g. ``files_removed`` on the system chain — nothing appends to a request's own chain
after it ends today) are allowed, and a cut before it is ``deleted``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.audit.canonical import CHAIN_KEY, EVENT_DATA, EVENT_TYPE, REQUEST_ID, SEQ, RawRow
from app.audit.chain import SYSTEM_CHAIN, AuditRow, ChainHead
from app.audit.events import ChainsRegistered, RegisteredEnd
from app.audit.exceptions import AuditError
from app.audit.problems import Problem
from app.audit.scan import Anchor
from app.database.models import AuditChain, AuditLog

#: How many registry chains there are; a batch appends to whichever is free.
REGISTRY_SHARDS = 16
#: The registry chains' keys (their heads are ``audit_chains`` rows).
REGISTRY_CHAINS = tuple(f"registry-{i:x}" for i in range(REGISTRY_SHARDS))
#: The actor of registry rows: a batch mixes the actors of its changes, and who did what is
#: on the request chains; ``actor`` filters of the trail stay about people and services.
REGISTRY_ACTOR = "ledgerflow:registry"
#: The states a request ends in (``app.orchestrator.states.TERMINAL``; a test keeps them
#: equal, the audit package does not import the orchestrator).
TERMINAL_STATES = frozenset({"completed", "failed", "cancelled"})


# --------------------------------------------------------------------------- writing


def entry_for(
    transitions: Iterable[Mapping[str, Any]], audit_rows: Iterable[Mapping[str, Any]]
) -> ChainsRegistered | None:
    """The registry entry for a batch's rows, or ``None`` when no chain opened or ended.

    A transition from no state opens the request's chain; one into a terminal state ends
    it, at the request's last audit row of the batch (its terminal head).
    """
    opened: list[str] = []
    ending: dict[str, str] = {}
    for row in transitions:
        key = str(row["request_id"])
        if row["from_state"] is None:
            opened.append(key)
        if row["to_state"] in TERMINAL_STATES:
            ending[key] = str(row["to_state"])
    if not opened and not ending:
        return None
    heads: dict[str, tuple[int, str]] = {}
    for row in audit_rows:
        key = row["chain_key"]
        if key in ending and row["seq"] > heads.get(key, (0, ""))[0]:
            heads[key] = (row["seq"], row["hash"])
    closed = [
        RegisteredEnd(request_id=key, seq=heads[key][0], hash=heads[key][1], state=state)
        for key, state in ending.items()
        if key in heads
    ]
    return ChainsRegistered(opened=opened, closed=closed)


async def _take_shard(connection: AsyncConnection, preferred: str) -> ChainHead:
    """Lock a registry head row: any free one (PostgreSQL), else wait for ``preferred``."""
    query = select(AuditChain.chain_key, AuditChain.seq, AuditChain.head_hash).where(
        AuditChain.chain_key.in_(REGISTRY_CHAINS)
    )
    if connection.dialect.name == "postgresql":
        free = (
            await connection.execute(
                query.order_by(AuditChain.chain_key).limit(1).with_for_update(skip_locked=True)
            )
        ).one_or_none()
        if free is not None:
            return ChainHead(free.chain_key, free.seq, free.head_hash)
        query = query.where(AuditChain.chain_key == preferred).with_for_update()
    else:
        query = query.where(AuditChain.chain_key == preferred)  # the writer lock is held
    row = (await connection.execute(query)).one_or_none()
    if row is None:
        raise RegistryMissing(
            f"audit_chains has no {preferred} row: the chain registry is missing "
            "(run `ledgerflow db upgrade`)"
        )
    return ChainHead(row.chain_key, row.seq, row.head_hash)


async def register(
    connection: AsyncConnection,
    transitions: Sequence[Mapping[str, Any]],
    audit_rows: Sequence[Mapping[str, Any]],
    *,
    now: datetime,
) -> AuditRow | None:
    """Record the chains a batch opened and ended, in the batch's transaction.

    The write path calls this once per batch, after the request rows are written (the
    registry head is the last lock taken). Nothing happens, and nothing is read, when no
    chain opened or ended. Round trips: one locking read of a head row, one INSERT, one
    UPDATE of the head.
    """
    entry = entry_for(transitions, audit_rows)
    if entry is None:
        return None
    first = entry.opened[0] if entry.opened else entry.closed[0].request_id
    head = await _take_shard(connection, REGISTRY_CHAINS[int(first[0], 16) % REGISTRY_SHARDS])
    row = head.append(entry, actor=REGISTRY_ACTOR, occurred_at=now)
    await connection.execute(insert(AuditLog), [dict(row)])
    await connection.execute(
        update(AuditChain)
        .where(AuditChain.chain_key == head.chain_key)
        .values(seq=head.seq, head_hash=head.hash, updated_at=now)
    )
    return row


class RegistryMissing(AuditError):
    """The chain registry's head rows are missing; the database is not at the head migration."""

    code = "registry_missing"


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class End:
    """Where a request chain ended, as the registry recorded it."""

    seq: int
    hash: str
    state: str
    where: str


@dataclass
class Registered:
    """What the registry chains recorded: opened request chains and their ends."""

    #: request id → where its opening is recorded (``registry-3 seq 17``).
    opened: dict[str, str] = field(default_factory=dict)
    closed: dict[str, End] = field(default_factory=dict)

    def add(self, data: Mapping[str, Any], where: str) -> None:
        """Take one ``chains_registered`` event's data."""
        for request_id in data.get("opened", ()):
            self.opened.setdefault(str(request_id), where)
        for end in data.get("closed", ()):
            self.closed[str(end["request_id"])] = End(
                int(end["seq"]), str(end["hash"]), str(end["state"]), where
            )

    def anchors(self) -> dict[str, list[Anchor]]:
        """Each ended chain's terminal head, which the chain must still contain."""
        return {key: [Anchor(end.seq, end.hash, "registry")] for key, end in self.closed.items()}

    def narrowed(self, mine: Callable[[str], bool]) -> Registered:
        """Only the entries whose request ``mine`` accepts."""
        return Registered(
            {k: v for k, v in self.opened.items() if mine(k)},
            {k: v for k, v in self.closed.items() if mine(k)},
        )


@dataclass
class SystemFacts:
    """What the non-request chains recorded that verification needs elsewhere."""

    #: Requests whose payload purge the system chain records.
    purged: set[str] = field(default_factory=set)
    #: Digests of the checkpoints the system chain records as taken.
    checkpoints: list[str] = field(default_factory=list)
    #: The registry (``None`` until a registry chain has a head row).
    registered: Registered | None = None

    def feed(self, row: RawRow) -> None:
        """Read one row of the system chain or a registry chain (others are ignored)."""
        event_type, key = row[EVENT_TYPE], row[CHAIN_KEY]
        if event_type not in ("data_purged", "audit_accessed", "chains_registered"):
            return
        try:
            data = json.loads(row[EVENT_DATA])
        except (TypeError, ValueError):
            return  # the row cannot hash right either; its chain reports it
        if not isinstance(data, dict):
            return
        if key == SYSTEM_CHAIN:
            if event_type == "data_purged" and data.get("category") == "payload":
                self.purged.add(str(row[REQUEST_ID]))
            elif (
                event_type == "audit_accessed"
                and data.get("action") == "checkpoint"
                and not data.get("denied")
                and isinstance(data.get("filters"), dict)
            ):
                self.checkpoints.append(str(data["filters"].get("checkpoint")))
        elif key in REGISTRY_CHAINS and event_type == "chains_registered":
            if self.registered is None:
                self.registered = Registered()
            self.registered.add(data, f"{key} seq {row[SEQ]}")


def check_registered(
    registered: Registered, requests: Mapping[str, Any], chains: Iterable[str]
) -> list[Problem]:
    """A partition's requests and request chains against the registry (narrowed to it)."""
    problems: list[Problem] = []
    seen = set(chains)
    for key, request in requests.items():
        if key not in registered.opened:
            problems.append(
                Problem(
                    key,
                    None,
                    None,
                    "unregistered",
                    "the chain registry never recorded this request (inserted?)",
                    table="requests",
                )
            )
            continue
        end = registered.closed.get(key)
        if end is None and request.state in TERMINAL_STATES:
            problems.append(
                Problem(
                    key,
                    None,
                    None,
                    "unregistered",
                    f"the request ended ({request.state}) but the registry records no end",
                    table="requests",
                    column="state",
                )
            )
        elif end is not None and end.state != request.state:
            problems.append(
                Problem(
                    key,
                    None,
                    None,
                    "registry_mismatch",
                    f"requests.state is {request.state!r} but the registry recorded the "
                    f"request ending {end.state!r} ({end.where})",
                    table="requests",
                    column="state",
                )
            )
    for key in sorted(seen - set(requests) - set(registered.opened)):
        problems.append(
            Problem(key, None, None, "unregistered", "a chain the registry never recorded")
        )
    for key in sorted(set(registered.opened) - set(requests) - seen):
        where = registered.opened[key]
        problems.append(
            Problem(
                key,
                None,
                None,
                "chain_missing",
                f"the registry recorded this request chain ({where}) but it has no rows "
                "(the request was erased)",
            )
        )
        problems.append(
            Problem(
                key,
                None,
                None,
                "request_missing",
                f"the registry recorded this request ({where}) but it has no requests row",
                table="requests",
            )
        )
    return problems
