"""The agent registry: agent ids to instances, extended by configuration.

Deployments plug their own agents in with ``AGENTS=package.module:Class,...`` (dotted
paths) or the ``ledgerflow.agents`` entry-point group; an id a workflow needs but nobody
registered is an error at startup (``WorkflowRegistry.check_agents``), not at run time.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points
from typing import Any

from app.agents.base import Agent
from app.exceptions import ConfigurationError

ENTRY_POINT_GROUP = "ledgerflow.agents"

AnyAgent = Agent[Any, Any]


class AgentRegistry:
    """Agents by id."""

    def __init__(self, agents: Iterable[AnyAgent] = ()) -> None:
        self._agents: dict[str, AnyAgent] = {}
        for agent in agents:
            self.register(agent)

    def register(self, agent: AnyAgent) -> None:
        """Add ``agent`` (a later registration of the same id replaces the earlier one)."""
        self._agents[agent.agent_id] = agent

    def get(self, agent_id: str) -> AnyAgent:
        """The agent with ``agent_id``."""
        try:
            return self._agents[agent_id]
        except KeyError:
            raise ConfigurationError(f"no agent registered with id {agent_id!r}") from None

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._agents

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._agents))

    def load_dotted(self, spec: str) -> None:
        """Register agents from ``AGENTS`` (comma-separated ``module:Class`` paths)."""
        for path in filter(None, (part.strip() for part in spec.split(","))):
            self.register(_instantiate(path))

    def load_entry_points(self) -> None:
        """Register agents advertised by installed packages under ``ledgerflow.agents``."""
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            self.register(_instantiate(entry.value))


def _instantiate(path: str) -> AnyAgent:
    module_name, _, attr = path.partition(":")
    if not attr:
        raise ConfigurationError(f"AGENTS: {path!r} is not of the form package.module:Class")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"AGENTS: cannot load {path!r} ({exc})") from exc
    agent = target() if isinstance(target, type) else target
    if not isinstance(agent, Agent):
        raise ConfigurationError(f"AGENTS: {path!r} is not an Agent")
    return agent
