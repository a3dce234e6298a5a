"""``ledgerflow serve``: the HTTP API and a worker pool in one process (the main job).

Every ``CHECKPOINT_EVERY`` seconds it also takes a signed audit checkpoint and writes it to
``CHECKPOINT_DIR`` (:mod:`app.audit.schedule`).

SIGTERM or SIGINT stops everything cleanly: the server stops accepting connections and
finishes the requests in flight, the workers stop claiming, let running steps finish (up to
``SHUTDOWN_GRACE_SECONDS``) and release what is left, the pools close, and the process
exits 0. A second signal makes the server drop open connections at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

import typer

from app.cli.common import DatabaseUrlOption, command_group, database_for
from app.exceptions import ConfigurationError

serve_cli = command_group()


@serve_cli.command("serve")
def serve_command(
    host: Annotated[
        str | None, typer.Option("--host", help="Interface to listen on (default API_HOST).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", min=0, max=65535, help="Port to listen on (default API_PORT)."),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", min=1, help="Requests the workers run at once."),
    ] = None,
    no_workers: Annotated[
        bool, typer.Option("--no-workers", help="Serve the API only (workers run elsewhere).")
    ] = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Serve the HTTP API and run workers.

    Runs in this process until SIGTERM or Ctrl+C, then stops cleanly (exit 0).
    """
    import asyncio

    asyncio.run(serve(host, port, concurrency, workers=not no_workers, database_url=database_url))


async def serve(
    host: str | None,
    port: int | None,
    concurrency: int | None,
    *,
    workers: bool,
    database_url: str | None = None,
) -> None:
    """Run the API server (and a worker) until a signal, then shut both down in order."""
    import asyncio
    import math
    import signal

    import structlog
    import uvicorn

    from app.api import create_app
    from app.audit.checkpoint import configured_hmac_key
    from app.audit.schedule import check_folder, run_schedule
    from app.bootstrap import build_services
    from app.orchestrator.worker import Worker

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # Signals are ours (see below): uvicorn's handler would re-raise SIGTERM after
            # shutdown and end the process with -15 instead of a clean 0.
            yield

    log = structlog.get_logger(__name__)
    services = build_services(database=database_for(database_url))
    try:
        await services.check_database()
    except BaseException:
        await services.close()
        raise
    settings = services.settings
    if settings.checkpoint_every > 0:
        try:
            check_folder(settings.checkpoints_path)
        except OSError as exc:
            await services.close()
            raise ConfigurationError(
                f"CHECKPOINT_DIR: cannot write to {settings.checkpoints_path} "
                f"({exc.strerror or exc})"
            ) from exc
    host = host or settings.api_host
    port = settings.api_port if port is None else port
    server = _Server(
        uvicorn.Config(
            create_app(services),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="on",
            # No WebSocket routes: load no WebSocket library (uvicorn before 0.50 would
            # import websockets' deprecated legacy API).
            ws="none",
            timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds),
        )
    )
    worker = (
        Worker(
            services.orchestrator,
            services.agents,
            settings=settings,
            concurrency=concurrency,
            warehouse=services.warehouse,
        )
        if workers
        else None
    )

    stopping = asyncio.Event()

    def stop() -> None:
        server.should_exit = True
        stopping.set()
        # Long polls and event streams answer now instead of holding the shutdown up.
        services.watcher.close()
        if worker is not None:
            worker.stop()

    def on_signal() -> None:
        # A second signal drops open connections at once (uvicorn's force_exit); only a
        # signal may do that, or the app's lifespan shutdown would be skipped.
        if server.should_exit:
            server.force_exit = True
        stop()

    async def run_server() -> None:
        try:
            await server.serve()
        except SystemExit as exc:
            # uvicorn exits when it cannot bind; say so as a configuration error instead.
            raise ConfigurationError(
                f"cannot listen on {host}:{port} (is the port in use?)"
            ) from exc

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    tasks = [asyncio.create_task(run_server(), name="http")]
    if worker is not None:
        tasks.append(asyncio.create_task(worker.run(), name="worker"))
    if settings.checkpoint_every > 0:
        schedule = run_schedule(
            services.database,
            settings.checkpoints_path,
            settings.checkpoint_every,
            configured_hmac_key(),
            stopping,
        )
        tasks.append(asyncio.create_task(schedule, name="checkpoints"))
    log.info(
        "serve_started",
        host=host,
        port=port,
        workers=worker is not None,
        checkpoint_every=settings.checkpoint_every,
    )
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        stop()
        await asyncio.gather(*tasks)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await services.close()
        log.info("serve_stopped")
