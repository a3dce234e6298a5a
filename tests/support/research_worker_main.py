"""A real worker process over the reference workflows.

Run as ``python -m tests.support.research_worker_main``.

Settings come from the environment like the production worker's; with ``BLOCK_DIR`` set the
extraction step pauses after staging its files (:mod:`tests.support.research_agents`).
Prints its worker id on the first line of stdout.
"""

from __future__ import annotations

import asyncio
import os
import sys

from app.bootstrap import build_services
from app.config import Settings
from app.logging import configure_logging
from app.orchestrator.worker import Worker, run_worker
from tests.support.research_agents import PausingExtraction


async def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, "json")
    services = build_services(settings)
    if os.environ.get("BLOCK_DIR"):
        services.agents.register(PausingExtraction())
    worker = Worker(
        services.orchestrator, services.agents, settings=settings, warehouse=services.warehouse
    )
    sys.stdout.write(worker.worker_id + "\n")
    sys.stdout.flush()
    try:
        await run_worker(worker)
    finally:
        await services.close()


if __name__ == "__main__":
    asyncio.run(main())
