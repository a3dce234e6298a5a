"""What the engine records when a research request is submitted (before any step runs)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from app.agents.base import DomainWrite
from app.agents.research.payload import ResearchPayload


def research_submit_writes(
    request_id: uuid.UUID, payload: Mapping[str, Any] | ResearchPayload
) -> tuple[DomainWrite, ...]:
    """The ``research_requests`` row for a new request: researcher, IRB number, study title.

    Call it inside the submit transaction. A payload of the wrong shape raises
    ``pydantic.ValidationError`` naming the field, so nothing is written; an incomplete one
    (no IRB number, unknown codes) is accepted and escalated later by the requirements step.
    """
    parsed = (
        payload if isinstance(payload, ResearchPayload) else ResearchPayload.model_validate(payload)
    )
    irb = parsed.irb_number.strip() if parsed.irb_number else None
    return (
        DomainWrite(
            "research_requests",
            {
                "request_id": request_id,
                "researcher": parsed.researcher.strip(),
                "irb_number": irb or None,
                "study_title": parsed.study_title.strip(),
            },
        ),
    )


__all__ = ["research_submit_writes"]
