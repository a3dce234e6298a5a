"""The agent contract: what an agent is given, what it returns, how it signals trouble.

An agent has an ``agent_id``, typed input and output (pydantic models) and an async
``run(context, input)``. The engine builds the input by validating
``{"payload": <request payload>, "previous": {<step name>: <output>, ...}}`` against
``input_model``, so an agent declares exactly the parts it reads.

Agents never touch orchestrator tables and never commit anything. To record domain rows
(``requirements_data``, ``feasibility_reports``, ``data_deliveries``, ``recordings``...)
they return :class:`DomainWrite` s in a :class:`StepResult`; the engine applies them in the
same transaction as the step's transition, so a result and its record commit together.

Trouble is signalled with exceptions:

- :class:`RetryableError`: transient (network, lock, busy); retried per the step's policy.
- :class:`PermanentError`: retrying cannot help (bad input); the request fails now.
- :class:`NeedsHumanReview`: a person must decide (incomplete request, cohort too small);
  the engine opens an escalation carrying ``reason`` and ``detail``.

A :class:`StepResult` with ``review`` set succeeds but asks for a reviewer's approval
before the next step (a low-confidence transcript, say).

Side effects outside the database (files, external calls) must be idempotent under
``context.idempotency_key``: a step interrupted by a crash is run again.

Files an agent writes are its to clean up: :meth:`Agent.cleanup` is called by the engine,
durably (retried until it succeeds), when the request is cancelled or fails (remove every
file the step wrote for it) and before a step interrupted by a crash runs again on another
worker (remove what a re-run would not overwrite). It returns what it removed — names,
sizes and SHA-256 — which the engine records on the audit trail without any content.
"""

from __future__ import annotations

import hashlib
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.exceptions import LedgerflowError

InputT = TypeVar("InputT", bound=BaseModel)
OutputT = TypeVar("OutputT", bound=BaseModel)

#: Tables an agent may write through ``DomainWrite`` (never orchestrator or audit tables).
DOMAIN_TABLES = frozenset(
    {
        "research_requests",
        "requirements_data",
        "feasibility_reports",
        "data_deliveries",
        "recordings",
        "transcript_versions",
    }
)


class ClinicalDataSource(Protocol):
    """Read access to the clinical warehouse (``patients``, ``conditions``, ...)."""

    def read_session(self) -> Any:
        """An async context manager yielding a read-only ``AsyncSession``."""
        ...


@dataclass(frozen=True)
class DomainWrite:
    """One row for a domain table: inserted, or (with ``match``) updated where it matches."""

    table: str
    values: Mapping[str, Any]
    match: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.table not in DOMAIN_TABLES:
            raise ValueError(f"agents may not write table {self.table!r}")


@dataclass(frozen=True)
class StepResult(Generic[OutputT]):
    """An agent's output plus the domain rows to record and an optional review request."""

    output: OutputT
    writes: tuple[DomainWrite, ...] = ()
    #: When set, a reviewer must approve (reason shown to them) before the next step.
    review: str | None = None
    review_detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentContext:
    """What the engine tells an agent about the step it runs."""

    request_id: uuid.UUID
    kind: str
    step: str
    attempt: int
    #: Stable across attempts of this step: use it to make side effects idempotent.
    idempotency_key: str
    #: structlog logger bound with request_id, step, attempt and worker_id.
    log: Any
    warehouse: ClinicalDataSource
    settings: Settings


#: Why the engine asks an agent to clean up.
CleanupReason = Literal["cancelled", "failed", "recovered"]


@dataclass(frozen=True)
class CleanupContext:
    """What the engine tells an agent whose files are to be removed."""

    request_id: uuid.UUID
    kind: str
    step: str
    #: cancelled / failed: the request ended without a delivery — remove everything the
    #: step wrote for it. recovered: the step runs again — remove what a re-run would not
    #: overwrite (a re-run must still find the inputs it reads).
    reason: CleanupReason
    settings: Settings
    log: Any


@dataclass(frozen=True)
class RemovedFile:
    """A file a cleanup removed: its name relative to the agent's folder, size and digest."""

    name: str
    bytes: int
    sha256: str


def remove_files(root: Path, paths: Iterable[Path]) -> list[RemovedFile]:
    """Remove ``paths`` (files under ``root``), returning what was removed; missing ones are
    skipped, so a cleanup run twice removes nothing the second time."""
    removed = []
    for path in sorted(paths):
        if not path.is_file():
            continue
        data = path.read_bytes()
        path.unlink()
        removed.append(
            RemovedFile(
                name=str(path.relative_to(root)),
                bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
            )
        )
    return removed


class AgentError(LedgerflowError):
    """An agent could not finish its step."""

    code = "agent_error"

    def __init__(
        self,
        message: str | None = None,
        *,
        detail: Mapping[str, Any] | None = None,
        writes: tuple[DomainWrite, ...] = (),
    ) -> None:
        super().__init__(message)
        self.detail: dict[str, Any] = dict(detail or {})
        self.writes = writes


class RetryableError(AgentError):
    """A transient failure; the step may succeed if run again."""

    code = "agent_retryable"


class PermanentError(AgentError):
    """A failure that retrying cannot fix; the request fails."""

    code = "agent_permanent"


class NeedsHumanReview(AgentError):
    """The agent needs a person to decide; the request is escalated."""

    code = "needs_human_review"

    def __init__(
        self,
        reason: str,
        message: str | None = None,
        *,
        detail: Mapping[str, Any] | None = None,
        writes: tuple[DomainWrite, ...] = (),
    ) -> None:
        super().__init__(message or reason, detail=detail, writes=writes)
        self.reason = reason


class Agent(ABC, Generic[InputT, OutputT]):
    """Base class of every agent. Subclasses set the three class attributes and ``run``."""

    agent_id: ClassVar[str]
    input_model: ClassVar[type[BaseModel]]
    output_model: ClassVar[type[BaseModel]]

    @abstractmethod
    async def run(self, context: AgentContext, input: InputT) -> OutputT | StepResult[OutputT]:
        """Do the step's work and return its output (or a ``StepResult``)."""

    async def cleanup(self, context: CleanupContext) -> list[RemovedFile]:
        """Remove the files this agent's step wrote for the request (see the module
        docstring); returns what was removed. The default: an agent that writes no files."""
        return []

    def parse_input(self, payload: Mapping[str, Any], previous: Mapping[str, Any]) -> InputT:
        """Validate the engine's raw input against ``input_model``."""
        parsed = self.input_model.model_validate({"payload": payload, "previous": previous})
        return parsed  # type: ignore[return-value]


__all__ = [
    "DOMAIN_TABLES",
    "Agent",
    "AgentContext",
    "AgentError",
    "AsyncSession",
    "CleanupContext",
    "CleanupReason",
    "ClinicalDataSource",
    "DomainWrite",
    "NeedsHumanReview",
    "PermanentError",
    "RemovedFile",
    "RetryableError",
    "StepResult",
    "remove_files",
]
