"""The chain registry: every request chain's creation and end, on the record.

Reading side (this module's verification half): the registry chains (``registry-0`` …)
hold ``chains_registered`` events; :class:`Registered` collects which request chains were
opened and where each ended (its terminal head and state), and :func:`check_registered`
holds a partition's ``requests`` rows and chains to them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.audit.canonical import CHAIN_KEY, EVENT_DATA, EVENT_TYPE, REQUEST_ID, SEQ, RawRow
from app.audit.chain import SYSTEM_CHAIN
from app.audit.problems import Problem
from app.audit.scan import Anchor

#: How many registry chains there are; a batch appends to whichever is free.
REGISTRY_SHARDS = 16
#: The registry chains' keys (their heads are ``audit_chains`` rows).
REGISTRY_CHAINS = tuple(f"registry-{i:x}" for i in range(REGISTRY_SHARDS))
#: The states a request ends in (``app.orchestrator.states.TERMINAL``; a test keeps them
#: equal, the audit package does not import the orchestrator).
TERMINAL_STATES = frozenset({"completed", "failed", "cancelled"})


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
