"""Wiring in one place: settings → database → warehouse → agents → workflows → orchestrator."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.agents.registry import AgentRegistry
from app.agents.research import RESEARCH_AGENTS
from app.agents.transcription import TRANSCRIPTION_AGENTS
from app.config import Settings, get_settings
from app.database import Database
from app.orchestrator.catalog import default_workflows
from app.orchestrator.engine import Orchestrator
from app.orchestrator.retry import transient_retry
from app.orchestrator.watch import RequestWatcher
from app.orchestrator.workflows import WorkflowRegistry
from app.results import Deliveries, Recordings


def default_agents(settings: Settings) -> AgentRegistry:
    """The reference agents, then entry-point agents, then ``AGENTS`` (later ones win)."""
    classes = [*RESEARCH_AGENTS.values(), *TRANSCRIPTION_AGENTS.values()]
    registry = AgentRegistry(agent() for agent in classes)
    registry.load_entry_points()
    registry.load_dotted(settings.agents)
    return registry


@dataclass
class Services:
    """Everything a process (CLI command, API server, worker) needs, built once."""

    settings: Settings
    database: Database
    warehouse: Database
    agents: AgentRegistry
    orchestrator: Orchestrator
    #: Recordings and transcripts, and research deliveries, for the API, CLI and console.
    recordings: Recordings
    deliveries: Deliveries
    #: The process's one poller for callers waiting on requests (long polls, event streams).
    watcher: RequestWatcher = field(init=False)

    def __post_init__(self) -> None:
        self.watcher = RequestWatcher(
            self.database,
            poll_seconds=self.settings.watch_poll_seconds,
            max_waiters=self.settings.watch_max_waiters,
        )

    async def check_database(self) -> None:
        """Refuse to start unless the database answers and is at the head migration.

        What ``serve`` and ``worker`` run before anything else. A transient error (the
        server is restarting) is retried for a few seconds; a permanent one (no such
        database, login refused, no tables, behind the head) is raised at once, its message
        naming the fix. Once started, an outage is ridden out instead (retries, ``/readyz``).
        """
        from app.database.schema import require_head  # Alembic: only serve/worker need it

        async for attempt in transient_retry():
            with attempt:
                await require_head(self.database)

    async def close(self) -> None:
        """Wake whoever still waits on a request, then dispose of the connection pools."""
        self.watcher.close()
        await self.database.dispose()
        if self.warehouse is not self.database:
            await self.warehouse.dispose()


def build_services(
    settings: Settings | None = None,
    database: Database | None = None,
    workflows: WorkflowRegistry | None = None,
    agents: AgentRegistry | None = None,
) -> Services:
    """Build the services; an agent a workflow needs but nobody registered fails here."""
    settings = settings or get_settings()
    database = database or Database.from_url(settings.database, settings)
    warehouse = (
        Database.from_url(settings.warehouse, settings) if settings.warehouse_url else database
    )
    workflows = workflows or default_workflows()
    agents = agents or default_agents(settings)
    workflows.check_agents(agents)
    orchestrator = Orchestrator(
        database, workflows, max_queued_requests=settings.max_queued_requests, settings=settings
    )
    return Services(
        settings,
        database,
        warehouse,
        agents,
        orchestrator,
        Recordings(database, settings),
        Deliveries(database, settings),
    )
