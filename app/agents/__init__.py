"""Agents: the contract (``base``), the registry and the reference agents."""

from app.agents.base import (
    Agent,
    AgentContext,
    AgentError,
    DomainWrite,
    NeedsHumanReview,
    PermanentError,
    RetryableError,
    StepResult,
)

__all__ = [
    "Agent",
    "AgentContext",
    "AgentError",
    "DomainWrite",
    "NeedsHumanReview",
    "PermanentError",
    "RetryableError",
    "StepResult",
]
