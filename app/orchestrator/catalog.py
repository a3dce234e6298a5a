"""The workflows ledgerflow ships: research data requests and clinical transcription."""

from __future__ import annotations

from app.agents.research import research_submit_writes
from app.agents.research.submission import ResearchSubmission
from app.agents.transcription import TranscriptionPayload, transcription_submit_writes
from app.orchestrator.workflows import RetryPolicy, Step, Workflow, WorkflowRegistry

#: requirements → (reviewer approves the normalised criteria) → feasibility → extraction
#: → QA → delivery.
RESEARCH = Workflow(
    kind="research",
    payload_model=ResearchSubmission,
    on_submit=research_submit_writes,
    steps=(
        Step("requirements", "research.requirements", timeout=30, approval=True),
        Step("feasibility", "research.feasibility", timeout=120),
        Step("extraction", "research.extraction", timeout=600),
        Step("qa", "research.qa", timeout=300, retry=RetryPolicy(max_attempts=2)),
        Step("delivery", "research.delivery", timeout=300),
    ),
)


#: validate audio → transcribe offline (PocketSphinx) → verify (low confidence: a
#: clinician approves before completion).
TRANSCRIPTION = Workflow(
    kind="transcription",
    payload_model=TranscriptionPayload,
    on_submit=transcription_submit_writes,
    steps=(
        Step("validate", "transcription.validate", timeout=30),
        Step("transcribe", "transcription.transcribe", timeout=900),
        Step("verify", "transcription.verify", timeout=30),
    ),
)


def default_workflows() -> WorkflowRegistry:
    """Every workflow this build ships."""
    return WorkflowRegistry([RESEARCH, TRANSCRIPTION])
