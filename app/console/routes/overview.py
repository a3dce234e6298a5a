"""The overview: the workload at a glance, what waits for people, and the trail's health."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from app.audit.status import read_trail_status
from app.auth import ConsoleUser, Role
from app.console.access import services_of, viewer
from app.console.render import render
from app.orchestrator.states import State
from app.orchestrator.stats import read_overview

router = APIRouter()


@router.get("/")
async def overview(
    request: Request, user: Annotated[ConsoleUser, Depends(viewer())]
) -> HTMLResponse:
    """Counts by state and kind, queue depth, gates waiting, workers, checkpoint and verify.

    Everyone signed in sees the counts (``/metrics`` publishes them too); the waiting gates
    only roles that decide them, the trail's status only roles that may audit.
    """
    services = services_of(request)
    figures = await read_overview(
        services.database, sorted(services.orchestrator.workflows.agent_ids())
    )
    kinds = sorted({c.kind for c in figures.counts} | set(services.orchestrator.workflows.kinds))
    table = {(c.kind, c.state): c.count for c in figures.counts}
    trail = await read_trail_status(services.database) if user.principal.has(Role.AUDITOR) else None
    return render(
        request,
        "overview.html",
        title="Overview",
        section="overview",
        figures=figures,
        kinds=kinds,
        states=[s.value for s in State],
        table=table,
        show_gates=user.principal.has(Role.REVIEWER),
        show_requests=user.principal.has(Role.SUBMITTER, Role.REVIEWER),
        trail=trail,
    )
