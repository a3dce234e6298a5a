"""Small real agents for engine tests: they do real (tiny) work and fail on purpose.

Importable by worker subprocesses, so every behaviour here is driven by the payload or by
files, never by test-process memory.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from app.agents.base import (
    Agent,
    AgentContext,
    DomainWrite,
    NeedsHumanReview,
    PermanentError,
    RetryableError,
    StepResult,
)
from app.agents.registry import AgentRegistry
from app.orchestrator.workflows import RetryPolicy, Step, Workflow, WorkflowRegistry


class EnginePayload(BaseModel):
    """What test requests carry: numbers to add and instructions for the agents."""

    numbers: list[int] = []
    #: A step name -> how many attempts of that step fail before one succeeds.
    fail_times: dict[str, int] = {}
    #: Step names whose agent raises a permanent error.
    permanent: list[str] = []
    #: Step names whose agent asks for a human.
    review: list[str] = []
    #: Step names whose agent asks for approval through StepResult.review.
    soft_review: list[str] = []
    #: Step name -> seconds to sleep.
    sleep: dict[str, float] = {}
    #: Step name -> folder: the agent writes "<folder>/started-<attempt>" then waits until
    #: "<folder>/go" exists (so a test can kill or pause it mid-step).
    block: dict[str, str] = {}
    #: Step names whose agent returns a domain row that breaks a NOT NULL constraint.
    bad_write: list[str] = []


class In(BaseModel):
    payload: EnginePayload
    previous: dict[str, Any]


class Out(BaseModel):
    step: str
    total: int
    attempt: int
    pid: int


def _marker(folder: str, name: str) -> Path:
    return Path(folder) / name


class StepAgent(Agent[In, Out]):
    """Adds the numbers (plus the previous step's total) and misbehaves as told."""

    input_model = In
    output_model = Out

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id  # type: ignore[misc]

    async def run(self, context: AgentContext, input: In) -> Out | StepResult[Out]:
        payload = input.payload
        step = context.step
        if step in payload.block:
            folder = payload.block[step]
            _marker(folder, f"started-{context.attempt}-{os.getpid()}").touch()
            while not _marker(folder, "go").exists():
                await asyncio.sleep(0.05)
        if step in payload.sleep:
            await asyncio.sleep(payload.sleep[step])
        if step in payload.permanent:
            raise PermanentError(f"{step}: the input can never work")
        if step in payload.review:
            raise NeedsHumanReview("needs_a_person", detail={"step": step})
        if context.attempt <= payload.fail_times.get(step, 0):
            raise RetryableError(f"{step}: transient failure on attempt {context.attempt}")
        before = sum(
            v["total"] for v in input.previous.values() if isinstance(v, dict) and "total" in v
        )
        out = Out(
            step=step, total=before + sum(payload.numbers), attempt=context.attempt, pid=os.getpid()
        )
        if step in payload.soft_review:
            return StepResult(output=out, review="please_check")
        if step in payload.bad_write:
            broken = DomainWrite(
                "recordings", {"id": uuid.uuid4(), "request_id": context.request_id}
            )
            return StepResult(output=out, writes=(broken,))
        return out


FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.1)


def engine_workflows(timeout: float = 5.0, gate_after: str | None = None) -> WorkflowRegistry:
    """A three-step ``test`` kind and a one-step ``single`` kind."""
    steps = tuple(
        Step(
            name=name,
            agent_id=f"test.{name}",
            timeout=timeout,
            retry=FAST_RETRY,
            approval=name == gate_after,
        )
        for name in ("first", "second", "third")
    )
    return WorkflowRegistry(
        [
            Workflow(kind="test", steps=steps, payload_model=EnginePayload),
            Workflow(
                kind="single",
                steps=(Step(name="only", agent_id="test.only", timeout=timeout, retry=FAST_RETRY),),
                payload_model=EnginePayload,
            ),
        ]
    )


def engine_agents() -> AgentRegistry:
    """One StepAgent per step of the test workflows."""
    return AgentRegistry(StepAgent(f"test.{name}") for name in ("first", "second", "third", "only"))
