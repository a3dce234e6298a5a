"""Workflows as data: the ordered steps of each request kind and how each step is run."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from app.agents.base import DomainWrite
from app.orchestrator.exceptions import InvalidRequest, UnknownAgent

if TYPE_CHECKING:
    from app.config import Settings


@dataclass(frozen=True)
class RetryPolicy:
    """How often a step is tried and how long to wait between tries.

    Attempt ``n`` (from 1) failing with a retryable error schedules attempt ``n+1`` after
    ``min(max_delay, base_delay * 2**(n-1))`` seconds, with full jitter between half and all
    of it. Errors of a type in ``permanent`` fail the request without retries.
    """

    max_attempts: int = 3
    base_delay: float = 1.0
    max_delay: float = 60.0
    permanent: tuple[type[BaseException], ...] = ()

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before the attempt after ``attempt``."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** max(0, attempt - 1))
        return (rng or random).uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class Step:
    """One step of a workflow: which agent runs it, its timeout and retries, and its gate."""

    name: str
    agent_id: str
    timeout: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: When True a reviewer must approve after this step succeeds.
    approval: bool = False


SubmitWrites = Callable[[Any, Mapping[str, Any]], Iterable[DomainWrite]]


@dataclass(frozen=True)
class Workflow:
    """The steps of one request kind, its payload model and the rows written at submit."""

    kind: str
    steps: tuple[Step, ...]
    payload_model: type[BaseModel] | None = None
    #: ``(request_id, payload) -> DomainWrite``s committed with the submit (domain rows).
    on_submit: SubmitWrites | None = None

    def __post_init__(self) -> None:
        names = [step.name for step in self.steps]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"workflow {self.kind!r} needs steps with distinct names")

    def validate_payload(
        self, payload: Mapping[str, Any], settings: Settings | None = None
    ) -> dict[str, Any]:
        """Validate and normalise ``payload``; every invalid field is named, all at once.

        Rules that depend on the deployment (a recording inside ``AUDIO_DIR``) are checked
        against ``settings`` (default: the process's settings).
        """
        if self.payload_model is None:
            return dict(payload)
        from pydantic import ValidationError

        from app.config import get_settings
        from app.validation import SubmitContext, field_problems

        context = SubmitContext(settings or get_settings())
        try:
            model = self.payload_model.model_validate(payload, context=context)
        except ValidationError as exc:
            problems = field_problems(exc.errors(), "payload")
            raise InvalidRequest(problems=problems) from exc
        return model.model_dump(mode="json")


class WorkflowRegistry:
    """The workflows this deployment runs, by kind."""

    def __init__(self, workflows: Iterable[Workflow] = ()) -> None:
        self._by_kind: dict[str, Workflow] = {}
        for workflow in workflows:
            self.register(workflow)

    def register(self, workflow: Workflow) -> None:
        """Add (or replace) the workflow for ``workflow.kind``."""
        self._by_kind[workflow.kind] = workflow

    def get(self, kind: str) -> Workflow:
        """The workflow of ``kind``; an unknown kind is an ``InvalidRequest`` on ``kind``."""
        try:
            return self._by_kind[kind]
        except KeyError:
            known = ", ".join(sorted(self._by_kind)) or "none"
            raise InvalidRequest(f"unknown kind {kind!r} (known: {known})", field="kind") from None

    @property
    def kinds(self) -> tuple[str, ...]:
        """Registered kinds, sorted."""
        return tuple(sorted(self._by_kind))

    def agent_ids(self) -> set[str]:
        """Every agent id any registered workflow needs."""
        return {step.agent_id for wf in self._by_kind.values() for step in wf.steps}

    def check_agents(self, available: Iterable[str]) -> None:
        """Fail at startup, not at run time, when a workflow names an unregistered agent."""
        missing = sorted(self.agent_ids() - set(available))
        if missing:
            raise UnknownAgent(f"workflows name unregistered agents: {', '.join(missing)}")
