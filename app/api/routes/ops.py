"""``/healthz``, ``/readyz`` and ``/metrics``: for orchestrators and scrapers, no key needed."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app.api.deps import ServicesDep
from app.api.health import ReadinessProbe
from app.api.metrics import CONTENT_TYPE, ApiMetrics
from app.api.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> Health:
    """The process is up and serving (no database check)."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "Not ready, with the reason"}},
)
async def readyz(request: Request, services: ServicesDep) -> JSONResponse:
    """The database answers a new connection and is at the head migration (else 503)."""
    probe: ReadinessProbe = request.app.state.readiness
    result = await probe.check()
    if result.ready:
        body = Health(status="ok", revision=result.revision)
        return JSONResponse(body.model_dump(mode="json"))
    body = Health(status="unavailable", reason=result.reason, revision=result.revision)
    return JSONResponse(body.model_dump(mode="json"), status_code=503, headers={"Retry-After": "5"})


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request, services: ServicesDep) -> Response:
    """Prometheus exposition: HTTP traffic, requests by state, queue depth, step figures."""
    registry: ApiMetrics = request.app.state.metrics
    agent_ids = sorted(
        {
            step.agent_id
            for kind in services.orchestrator.workflows.kinds
            for step in services.orchestrator.workflows.get(kind).steps
        }
    )
    return Response(await registry.render(services.database, agent_ids), media_type=CONTENT_TYPE)
