"""A fast CLI: ``--help`` loads no database or web code, and a reading command loads neither
the agents nor the write path. (Timings are in PHASE_NOTES.md; what is imported is the part
that can regress silently, so that is what this pins.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import URL

ROOT = Path(__file__).resolve().parents[2]

#: Run the CLI in a fresh interpreter, then list every module it imported on stderr.
PROBE = (
    "import sys\n"
    "from app.cli import main\n"
    "try:\n"
    "    main(sys.argv[1:])\n"
    "finally:\n"
    "    sys.stderr.write('\\n'.join(sorted(sys.modules)))\n"
)


def imported(*args: str, env: dict[str, str] | None = None) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return set(done.stderr.splitlines())


def loaded(modules: set[str], *packages: str) -> set[str]:
    return {m for m in modules if m.split(".")[0] in packages or m in packages}


def test_help_loads_no_database_validation_or_web_code() -> None:
    modules = imported("--help")
    assert not loaded(modules, "sqlalchemy", "pydantic", "structlog", "fastapi", "numpy")
    assert not {m for m in modules if m.startswith(("app.database", "app.orchestrator"))}
    assert "app.cli" in modules


def test_a_reading_command_loads_neither_agents_nor_the_write_path(database_url: URL) -> None:
    url = database_url.render_as_string(hide_password=False)
    modules = imported("requests", "list", "--json", "--database-url", url)
    assert "app.orchestrator.reads" in modules
    assert not loaded(modules, "numpy", "pocketsphinx", "fastapi", "uvicorn", "httpx")
    heavy = {
        "app.agents.research",
        "app.agents.transcription",
        "app.orchestrator.engine",
        "app.orchestrator.transitions",
        "app.orchestrator.catalog",
        "app.audit.access",
        "app.audit.export",
        "app.api",
    }
    assert not heavy & modules, heavy & modules


def test_reading_recordings_loads_no_web_code(database_url: URL) -> None:
    url = database_url.render_as_string(hide_password=False)
    modules = imported("recordings", "list", "--json", "--database-url", url)
    assert "app.results.recordings" in modules
    assert not loaded(modules, "fastapi", "starlette", "uvicorn", "httpx")
    assert not {m for m in modules if m.startswith(("app.api", "app.console", "app.client"))}
