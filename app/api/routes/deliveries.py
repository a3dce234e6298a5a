"""``/v1/requests/{id}/delivery``: a research request's delivered files, over HTTP.

Reads go through :class:`app.results.Deliveries` with the caller as an ``http`` principal:
the request's submitter (another submitter's request is answered like a missing one, 404),
reviewers and admins; each file handed out is recorded as ``data_accessed``. A delivery
purged by retention answers 410 saying when and why.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Path
from fastapi.responses import StreamingResponse

from app.api.auth import ReaderDep
from app.api.deps import ServicesDep
from app.api.problems import ERROR_RESPONSES, GONE_RESPONSES, Problem
from app.results import DeliveryManifest

router = APIRouter(prefix="/v1", tags=["deliveries"], responses=ERROR_RESPONSES)


@router.get("/requests/{request_id}/delivery", responses=GONE_RESPONSES)
async def get_delivery(
    request_id: uuid.UUID, principal: ReaderDep, services: ServicesDep
) -> DeliveryManifest:
    """The delivery's manifest: each file's name, rows, bytes, SHA-256 and download URL, and
    the data dictionary. 409 while the request has not delivered (or is not research)."""
    return await services.deliveries.manifest(principal, request_id)


@router.get(
    "/requests/{request_id}/delivery/{name}",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}, "application/json": {}}, "description": "The file"},
        206: {"description": "The byte range asked for (`Content-Range`)"},
        416: {"model": Problem, "description": "Range not satisfiable"},
        **GONE_RESPONSES,
    },
)
async def get_delivery_file(
    request_id: uuid.UUID,
    name: Annotated[str, Path(max_length=255, description="a file the manifest lists")],
    principal: ReaderDep,
    services: ServicesDep,
    range_header: Annotated[
        str | None, Header(alias="Range", max_length=200, description="`bytes=first-last`")
    ] = None,
) -> StreamingResponse:
    """One delivered file (or ``manifest.json``), streamed; ``ETag`` is the manifest's
    SHA-256 of it and ``Digest: sha-256=<base64>`` (RFC 3230; ``Repr-Digest``, RFC 9530)
    the same digest, so a client can check what it saved. Each download is recorded as
    ``data_accessed``."""
    opened = await services.deliveries.open_file(principal, request_id, name, range_header)
    return StreamingResponse(
        opened.chunks(),
        status_code=opened.status_code,
        media_type=opened.media_type,
        headers=opened.headers(download=True),
    )
