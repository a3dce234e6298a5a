"""Prometheus metrics: HTTP traffic counted in-process, the workload read from the database.

In-process (cumulative, per process): ``ledgerflow_http_requests_total`` and
``ledgerflow_http_request_duration_seconds``. From the database at scrape time (cached for
``METRICS_CACHE_SECONDS`` so frequent scrapes cost one set of queries): requests by state,
queue depth, and over the last ``METRICS_WINDOW_SECONDS`` step attempts and durations by
agent, retries and lease recoveries. The request figures come from
:mod:`app.orchestrator.stats` (the console's overview reads the same); ``agent_executions`` by
``ix_agent_executions_agent_id_started_at``, ``audit_logs`` by
``ix_audit_logs_event_type_occurred_at``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from app.database import Database
from app.database.models import AgentExecution, AuditLog
from app.database.types import utcnow
from app.orchestrator.states import State
from app.orchestrator.stats import count_requests, queue_depth

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Workload:
    """One reading of the database figures."""

    by_state: dict[str, int] = field(default_factory=dict)
    queue_depth: int = 0
    #: (agent_id, status) → attempts in the window.
    attempts: dict[tuple[str, str], int] = field(default_factory=dict)
    #: agent_id → (finished attempts, total seconds, longest seconds) in the window.
    durations: dict[str, tuple[int, float, float]] = field(default_factory=dict)
    #: agent_id → attempts after the first in the window.
    retries: dict[str, int] = field(default_factory=dict)
    lease_recoveries: int = 0


async def read_workload(database: Database, agent_ids: Sequence[str], window: int) -> Workload:
    """Query the figures (one read transaction, five statements)."""
    now = utcnow()
    since = now - timedelta(seconds=window)
    out = Workload()
    async with database.read_session() as session:
        for row in await count_requests(session):
            out.by_state[row.state] = out.by_state.get(row.state, 0) + row.count
        out.queue_depth = await queue_depth(session, now)
        recent = (AgentExecution.agent_id.in_(agent_ids), AgentExecution.started_at >= since)
        for agent_id, status, count in await session.execute(
            select(AgentExecution.agent_id, AgentExecution.status, func.count())
            .where(*recent)
            .group_by(AgentExecution.agent_id, AgentExecution.status)
        ):
            out.attempts[(str(agent_id), str(status))] = int(count)
        for agent_id, count, total, longest in await session.execute(
            select(
                AgentExecution.agent_id,
                func.count(AgentExecution.duration_ms),
                func.sum(AgentExecution.duration_ms),
                func.max(AgentExecution.duration_ms),
            )
            .where(*recent, AgentExecution.duration_ms.is_not(None))
            .group_by(AgentExecution.agent_id)
        ):
            out.durations[str(agent_id)] = (
                int(count),
                float(total or 0) / 1000,
                float(longest or 0) / 1000,
            )
        for agent_id, count in await session.execute(
            select(AgentExecution.agent_id, func.count())
            .where(*recent, AgentExecution.attempt > 1)
            .group_by(AgentExecution.agent_id)
        ):
            out.retries[str(agent_id)] = int(count)
        out.lease_recoveries = int(
            (
                await session.execute(
                    select(func.count())
                    .select_from(AuditLog)
                    .where(AuditLog.event_type == "step_recovered", AuditLog.occurred_at >= since)
                )
            ).scalar_one()
        )
    return out


class _WorkloadCollector(Collector):
    """Turns the last :class:`Workload` reading into metric families."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.workload = Workload()

    def collect(self) -> Iterable[Metric]:
        w = self.workload
        span = f"over the last {self.window} s"
        states = GaugeMetricFamily("ledgerflow_requests", "Requests by state.", labels=["state"])
        for state in State:
            states.add_metric([state.value], w.by_state.get(state.value, 0))
        yield states
        yield GaugeMetricFamily(
            "ledgerflow_queue_depth",
            "Pending requests a worker could claim now.",
            value=w.queue_depth,
        )
        attempts = GaugeMetricFamily(
            "ledgerflow_step_attempts", f"Step attempts {span}.", labels=["agent_id", "status"]
        )
        for (agent_id, status), count in sorted(w.attempts.items()):
            attempts.add_metric([agent_id, status], count)
        yield attempts
        mean = GaugeMetricFamily(
            "ledgerflow_step_duration_seconds_mean",
            f"Mean step duration {span}.",
            labels=["agent_id"],
        )
        longest = GaugeMetricFamily(
            "ledgerflow_step_duration_seconds_max",
            f"Longest step duration {span}.",
            labels=["agent_id"],
        )
        for agent_id, (count, total, top) in sorted(w.durations.items()):
            mean.add_metric([agent_id], total / count if count else 0.0)
            longest.add_metric([agent_id], top)
        yield mean
        yield longest
        retries = GaugeMetricFamily(
            "ledgerflow_step_retries", f"Attempts after the first {span}.", labels=["agent_id"]
        )
        for agent_id, count in sorted(w.retries.items()):
            retries.add_metric([agent_id], count)
        yield retries
        yield GaugeMetricFamily(
            "ledgerflow_lease_recoveries",
            f"Steps taken over after a worker's lease expired {span}.",
            value=w.lease_recoveries,
        )


class ApiMetrics:
    """The registry of one app: HTTP instruments plus the database-derived workload."""

    def __init__(self, window: int, cache_seconds: float) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ledgerflow_http_requests",
            "HTTP requests served, by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ledgerflow_http_request_duration_seconds",
            "HTTP request latency by route template.",
            ["method", "route"],
            registry=self.registry,
        )
        self._workload = _WorkloadCollector(window)
        self.registry.register(self._workload)
        self.window = window
        self.cache_seconds = cache_seconds
        self._read_at: float | None = None

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one served HTTP request."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    async def render(self, database: Database, agent_ids: Sequence[str]) -> bytes:
        """The exposition text, re-reading the database when the cached reading is stale."""
        now = time.monotonic()
        if self._read_at is None or now - self._read_at >= self.cache_seconds:
            self._workload.workload = await read_workload(database, agent_ids, self.window)
            self._read_at = now
        return generate_latest(self.registry)
