"""Real research agents that pause mid-step, so a test can cancel or kill them there.

Each does its real work, touches ``<folder>/<step>-started-<attempt>-<pid>-<request id>``
and then waits
until ``<folder>/go`` exists. The folder comes from the constructor or, in a worker
subprocess, from the ``BLOCK_DIR`` environment variable.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from app.agents.base import AgentContext
from app.agents.research.extraction import ExtractionAgent, ExtractionInput, ExtractionOutput
from app.agents.research.qa import QaAgent, QaInput, QaOutput


async def pause(folder: Path, context: AgentContext) -> None:
    """Mark the step as started, then wait for ``go``."""
    marker = f"{context.step}-started-{context.attempt}-{os.getpid()}-{context.request_id}"
    (folder / marker).touch()
    while not (folder / "go").exists():
        await asyncio.sleep(0.05)


class PausingExtraction(ExtractionAgent):
    """Stages the extract, then waits: a cancel or a kill finds staged files on disk."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or Path(os.environ["BLOCK_DIR"])

    async def run(self, context: AgentContext, input: ExtractionInput) -> ExtractionOutput:
        output = await super().run(context, input)
        await pause(self.folder, context)
        return output


class PausingQa(QaAgent):
    """Waits before checking the staged extract."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or Path(os.environ["BLOCK_DIR"])

    async def run(self, context: AgentContext, input: QaInput) -> QaOutput:
        await pause(self.folder, context)
        return await super().run(context, input)
