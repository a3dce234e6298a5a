"""``ledgerflow worker|submit|status``: run workers and work with requests."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

import typer

from app.cli.common import console

requests_cli = typer.Typer()


@requests_cli.command("worker")
def worker_command(
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", min=1, help="Requests run at once.")
    ] = None,
) -> None:
    """Run workers only (scale out: start one per machine on a shared PostgreSQL)."""
    from app.bootstrap import build_services
    from app.orchestrator.worker import Worker, run_worker

    async def go() -> None:
        services = build_services()
        try:
            worker = Worker(
                services.orchestrator,
                services.agents,
                settings=services.settings,
                concurrency=concurrency,
                warehouse=services.warehouse,
            )
            await run_worker(worker)
        finally:
            await services.close()

    asyncio.run(go())


@requests_cli.command("submit")
def submit_command(
    kind: Annotated[str, typer.Argument(help="Request kind: research or transcription.")],
    payload_file: Annotated[
        typer.FileText, typer.Argument(help="JSON payload file ('-' for standard input).")
    ],
    submitted_by: Annotated[str, typer.Option("--as", help="Who submits.")] = "cli",
    idempotency_key: Annotated[str | None, typer.Option("--idempotency-key")] = None,
    priority: Annotated[int, typer.Option("--priority")] = 0,
) -> None:
    """Submit a request and print it as JSON."""
    import json

    from app.bootstrap import build_services
    from app.orchestrator.exceptions import InvalidRequest

    try:
        payload = json.load(payload_file)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"not JSON ({exc})", field="payload") from exc

    async def go() -> str:
        services = build_services()
        try:
            view = await services.orchestrator.submit(
                kind, payload, submitted_by, idempotency_key, priority
            )
            return view.model_dump_json(indent=2)
        finally:
            await services.close()

    console.print_json(asyncio.run(go()))


@requests_cli.command("status")
def status_command(
    request_id: Annotated[str, typer.Argument(help="The request's id.")],
) -> None:
    """Print one request with its history as JSON."""
    from app.bootstrap import build_services
    from app.orchestrator.exceptions import InvalidRequest

    try:
        rid = uuid.UUID(request_id)
    except ValueError as exc:
        raise InvalidRequest(f"{request_id!r} is not a request id", field="request_id") from exc

    async def go() -> str:
        services = build_services()
        try:
            return (await services.orchestrator.history(rid)).model_dump_json(indent=2)
        finally:
            await services.close()

    console.print_json(asyncio.run(go()))
