"""Research reference agents: requirements → feasibility → extraction → QA → delivery.

Each step is one module with its agent, its input model (``payload`` plus the outputs of
earlier steps under ``previous``) and its output model. The engine records a request's
``research_requests`` row at submit time with :func:`research_submit_writes`.
"""

from typing import Any

from app.agents.base import Agent
from app.agents.research.delivery import DeliveryAgent, DeliveryInput, DeliveryOutput
from app.agents.research.extraction import ExtractionAgent, ExtractionInput, ExtractionOutput
from app.agents.research.feasibility import FeasibilityAgent, FeasibilityInput, FeasibilityOutput
from app.agents.research.payload import (
    AgeRange,
    DataElement,
    PhiLevel,
    ResearchCriteria,
    ResearchPayload,
    TimeWindow,
)
from app.agents.research.qa import QaAgent, QaInput, QaOutput
from app.agents.research.requirements import (
    RequirementIssue,
    RequirementsAgent,
    RequirementsInput,
    RequirementsOutput,
)
from app.agents.research.samples import sample_research_payloads
from app.agents.research.storage import StoredFile
from app.agents.research.submit import research_submit_writes
from app.agents.research.synthetic import SeedSummary, generate_warehouse, seed_warehouse

#: The research workflow's agents in step order, keyed by step name.
RESEARCH_AGENTS: dict[str, type[Agent[Any, Any]]] = {
    "requirements": RequirementsAgent,
    "feasibility": FeasibilityAgent,
    "extraction": ExtractionAgent,
    "qa": QaAgent,
    "delivery": DeliveryAgent,
}

__all__ = [
    "RESEARCH_AGENTS",
    "AgeRange",
    "DataElement",
    "DeliveryAgent",
    "DeliveryInput",
    "DeliveryOutput",
    "ExtractionAgent",
    "ExtractionInput",
    "ExtractionOutput",
    "FeasibilityAgent",
    "FeasibilityInput",
    "FeasibilityOutput",
    "PhiLevel",
    "QaAgent",
    "QaInput",
    "QaOutput",
    "RequirementIssue",
    "RequirementsAgent",
    "RequirementsInput",
    "RequirementsOutput",
    "ResearchCriteria",
    "ResearchPayload",
    "SeedSummary",
    "StoredFile",
    "TimeWindow",
    "generate_warehouse",
    "research_submit_writes",
    "sample_research_payloads",
    "seed_warehouse",
]
