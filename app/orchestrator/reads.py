"""The orchestrator's reads: one request, a page of requests, a request's history, and the
approval and escalation queues, as views.

:class:`Reader` needs only the database, so a command that only reads (``ledgerflow
requests list``) loads neither the workflows nor the write path; :class:`Orchestrator`
is a ``Reader`` too, so the Python API offers both from one object. Every read is one
read transaction, retried on a transient database error.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import and_, or_, select

from app.database import Database
from app.database.models import AgentExecution, Approval, Escalation, Request, StateTransition
from app.orchestrator.exceptions import InvalidRequest, NotFound
from app.orchestrator.retry import retrying_read
from app.orchestrator.states import State
from app.orchestrator.views import (
    ApprovalView,
    EscalationView,
    ExecutionView,
    History,
    RequestPage,
    RequestView,
    TransitionView,
    decode_cursor,
    encode_cursor,
)

ViewT = TypeVar("ViewT", bound=BaseModel)


class Reader:
    """Reads requests, their histories, approvals and escalations from ``database``."""

    def __init__(self, database: Database) -> None:
        self.database = database

    @retrying_read
    async def get(self, request_id: uuid.UUID) -> RequestView:
        """One request."""
        async with self.database.read_session() as session:
            row = await session.get(Request, request_id)
            if row is None:
                raise NotFound(f"no request {request_id}")
            return RequestView.model_validate(row)

    @retrying_read
    async def list(
        self,
        *,
        kind: str | None = None,
        state: str | None = None,
        submitted_by: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> RequestPage:
        """Requests newest first, filtered, by keyset pagination on ``(created_at, id)``."""
        if not 1 <= limit <= 500:
            raise InvalidRequest("must be from 1 to 500", field="limit")
        if state is not None and state not in State.__members__.values():
            raise InvalidRequest(f"unknown state {state!r}", field="state")
        query = select(Request)
        for column, value in (
            (Request.kind, kind),
            (Request.state, state),
            (Request.submitted_by, submitted_by),
        ):
            if value is not None:
                query = query.where(column == value)
        if created_after is not None:
            query = query.where(Request.created_at >= created_after)
        if created_before is not None:
            query = query.where(Request.created_at < created_before)
        if cursor is not None:
            stamp, rid = decode_cursor(cursor)
            query = query.where(
                or_(Request.created_at < stamp, and_(Request.created_at == stamp, Request.id < rid))
            )
        query = query.order_by(Request.created_at.desc(), Request.id.desc()).limit(limit + 1)
        async with self.database.read_session() as session:
            rows = list((await session.execute(query)).scalars())
            items = [RequestView.model_validate(row) for row in rows[:limit]]
        more = len(rows) > limit
        next_cursor = encode_cursor(items[-1].created_at, items[-1].id) if more and items else None
        return RequestPage(items=items, next_cursor=next_cursor)

    @retrying_read
    async def history(self, request_id: uuid.UUID) -> History:
        """A request with its transitions, executions, approvals and escalations, in order."""
        async with self.database.read_session() as session:
            row = await session.get(Request, request_id)
            if row is None:
                raise NotFound(f"no request {request_id}")
            transitions = (
                await session.execute(
                    select(StateTransition)
                    .where(StateTransition.request_id == request_id)
                    .order_by(StateTransition.created_at, StateTransition.id)
                )
            ).scalars()
            executions = (
                await session.execute(
                    select(AgentExecution)
                    .where(AgentExecution.request_id == request_id)
                    .order_by(AgentExecution.step_index, AgentExecution.attempt)
                )
            ).scalars()
            approvals = (
                await session.execute(
                    select(Approval)
                    .where(Approval.request_id == request_id)
                    .order_by(Approval.requested_at)
                )
            ).scalars()
            escalations = (
                await session.execute(
                    select(Escalation)
                    .where(Escalation.request_id == request_id)
                    .order_by(Escalation.opened_at)
                )
            ).scalars()
            return History(
                request=RequestView.model_validate(row),
                transitions=[TransitionView.model_validate(t) for t in transitions],
                executions=[ExecutionView.model_validate(e) for e in executions],
                approvals=[ApprovalView.model_validate(a) for a in approvals],
                escalations=[EscalationView.model_validate(e) for e in escalations],
            )

    @retrying_read
    async def approvals(
        self, status: str | None = "pending", limit: int = 100
    ) -> builtins.list[ApprovalView]:
        """Approvals, oldest first (pending ones by default)."""
        query = select(Approval).order_by(Approval.requested_at).limit(limit)
        if status is not None:
            query = query.where(Approval.status == status)
        return await self._views(query, ApprovalView)

    @retrying_read
    async def escalations(
        self, status: str | None = "open", limit: int = 100
    ) -> builtins.list[EscalationView]:
        """Escalations, oldest first (open ones by default)."""
        query = select(Escalation).order_by(Escalation.opened_at).limit(limit)
        if status is not None:
            query = query.where(Escalation.status == status)
        return await self._views(query, EscalationView)

    @retrying_read
    async def approval(self, approval_id: uuid.UUID) -> ApprovalView:
        """One approval gate (``NotFound`` if there is none with this id)."""
        async with self.database.read_session() as session:
            row = await session.get(Approval, approval_id)
            if row is None:
                raise NotFound(f"no approval {approval_id}")
            return ApprovalView.model_validate(row)

    @retrying_read
    async def escalation(self, escalation_id: uuid.UUID) -> EscalationView:
        """One escalation (``NotFound`` if there is none with this id)."""
        async with self.database.read_session() as session:
            row = await session.get(Escalation, escalation_id)
            if row is None:
                raise NotFound(f"no escalation {escalation_id}")
            return EscalationView.model_validate(row)

    async def _views(self, query: Any, view: type[ViewT]) -> builtins.list[ViewT]:
        async with self.database.read_session() as session:
            rows: Sequence[Any] = (await session.execute(query)).scalars().all()
            return [view.model_validate(row) for row in rows]


__all__ = ["Reader"]
