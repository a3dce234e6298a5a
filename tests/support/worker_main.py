"""A real worker process over the engine test workflows (``python -m tests.support.worker_main``).

Reads DATABASE_URL, LEASE_SECONDS, HEARTBEAT_SECONDS, POLL_SECONDS and WORKER_CONCURRENCY
from the environment like the production worker (and GATE_AFTER: a step followed by an
approval gate), prints its worker id on the first line of stdout, and shuts down gracefully
on SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import os
import sys

from app.config import Settings
from app.database import Database
from app.logging import configure_logging
from app.orchestrator.engine import Orchestrator
from app.orchestrator.worker import Worker, run_worker
from tests.support.agents import engine_agents, engine_workflows


async def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, "json")
    database = Database.from_url(settings.database)
    timeout = float(os.environ.get("STEP_TIMEOUT", "60"))
    gate_after = os.environ.get("GATE_AFTER") or None
    orchestrator = Orchestrator(database, engine_workflows(timeout=timeout, gate_after=gate_after))
    worker = Worker(orchestrator, engine_agents(), settings=settings)
    sys.stdout.write(worker.worker_id + "\n")
    sys.stdout.flush()
    try:
        await run_worker(worker)
    finally:
        await database.dispose()


if __name__ == "__main__":
    asyncio.run(main())
