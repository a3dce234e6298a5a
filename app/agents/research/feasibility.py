"""Step ``feasibility``: count the cohort and each element's availability in the warehouse.

The count runs the parameterised cohort query of :mod:`app.agents.research.cohort` in a
read-only warehouse session. The report (SQL with bind placeholders, cohort size, the
minimum that applied, availability per element) is recorded whether or not the cohort is
large enough; a cohort below the minimum escalates (``cohort_below_minimum``) with it.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.base import Agent, AgentContext, DomainWrite, NeedsHumanReview, StepResult
from app.agents.research.cohort import cohort_count, compiled_sql, element_count
from app.agents.research.payload import ResearchCriteria, ResearchPayload
from app.agents.research.requirements import RequirementsOutput


class FeasibilityPrevious(BaseModel):
    """Earlier outputs this step reads."""

    requirements: RequirementsOutput


class FeasibilityInput(BaseModel):
    """The payload (unused: the normalised criteria are authoritative) and earlier outputs."""

    payload: ResearchPayload
    previous: FeasibilityPrevious


class FeasibilityOutput(BaseModel):
    """Cohort size against its minimum, per-element availability and the query's digest."""

    cohort_size: int
    min_cohort_size: int
    feasible: bool
    element_availability: dict[str, float]
    sql_sha256: str


async def measure_cohort(
    session: AsyncSession, criteria: ResearchCriteria
) -> tuple[str, int, dict[str, float]]:
    """Run the count; return its SQL, the cohort size and each element's availability."""
    count_stmt = cohort_count(criteria)
    sql_text = await compiled_sql(session, count_stmt)
    size = int((await session.execute(count_stmt)).scalar_one())
    availability: dict[str, float] = {}
    for element in criteria.data_elements:
        if size == 0:
            availability[element.value] = 0.0
            continue
        with_data = int((await session.execute(element_count(criteria, element))).scalar_one())
        availability[element.value] = round(with_data / size, 4)
    return sql_text, size, availability


class FeasibilityAgent(Agent[FeasibilityInput, FeasibilityOutput]):
    """Counts the cohort and escalates when it is below the minimum (``research.feasibility``)."""

    agent_id: ClassVar[str] = "research.feasibility"
    input_model: ClassVar[type[BaseModel]] = FeasibilityInput
    output_model: ClassVar[type[BaseModel]] = FeasibilityOutput

    async def run(
        self, context: AgentContext, input: FeasibilityInput
    ) -> StepResult[FeasibilityOutput]:
        """Count the cohort; record the report; escalate if the cohort is too small."""
        criteria = input.previous.requirements.criteria
        minimum = criteria.effective_min_cohort_size(context.settings.min_cohort_size)
        session: AsyncSession
        async with context.warehouse.read_session() as session:
            sql_text, size, availability = await measure_cohort(session, criteria)
        feasible = size >= minimum
        report: dict[str, Any] = {
            "request_id": context.request_id,
            "sql_text": sql_text,
            "cohort_size": size,
            "min_cohort_size": minimum,
            "feasible": feasible,
            "element_availability": availability,
        }
        write = DomainWrite("feasibility_reports", report)
        context.log.info(
            "cohort_counted", cohort_size=size, min_cohort_size=minimum, feasible=feasible
        )
        if not feasible:
            raise NeedsHumanReview(
                "cohort_below_minimum",
                f"cohort of {size} is below the minimum of {minimum}",
                detail={
                    "cohort_size": size,
                    "min_cohort_size": minimum,
                    "element_availability": availability,
                },
                writes=(write,),
            )
        output = FeasibilityOutput(
            cohort_size=size,
            min_cohort_size=minimum,
            feasible=True,
            element_availability=availability,
            sql_sha256=hashlib.sha256(sql_text.encode("utf-8")).hexdigest(),
        )
        return StepResult(output, writes=(write,))


__all__ = [
    "FeasibilityAgent",
    "FeasibilityInput",
    "FeasibilityOutput",
    "FeasibilityPrevious",
    "measure_cohort",
]
