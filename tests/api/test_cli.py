"""``ledgerflow clients|requests|approvals|escalations``: tables, and ``--json`` for scripts."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy.engine import URL
from typer.testing import CliRunner

from app.agents.research import sample_research_payloads
from app.cli import cli
from app.database import Database
from app.orchestrator.catalog import default_workflows
from app.orchestrator.engine import Orchestrator

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_clients_requests_and_reviews_from_the_command_line(database_url: URL) -> None:
    url = database_url.render_as_string(hide_password=False)
    made = json.loads(
        invoke(
            "clients", "create", "svc-cli", "--role", "reviewer", "--json", "--database-url", url
        )
    )
    assert made["key"].startswith(made["key_prefix"]) and made["role"] == "reviewer"
    [listed] = json.loads(invoke("clients", "list", "--json", "--database-url", url))
    assert listed["name"] == "svc-cli" and "key" not in listed
    invoke("clients", "revoke", "svc-cli", "--database-url", url)
    assert json.loads(invoke("clients", "list", "--active", "--json", "--database-url", url)) == []

    page = json.loads(invoke("requests", "list", "--json", "--database-url", url))
    assert page == {"items": [], "next_cursor": None}
    assert "requests (newest first)" in invoke("requests", "list", "--database-url", url)
    assert json.loads(invoke("approvals", "list", "--json", "--database-url", url)) == []
    assert json.loads(invoke("escalations", "list", "--json", "--database-url", url)) == []

    request_id = asyncio.run(_submit(url))
    shown = json.loads(invoke("requests", "show", request_id, "--json", "--database-url", url))
    assert shown["request"]["id"] == request_id and shown["transitions"][0]["to_state"] == "pending"
    assert "transitions" in invoke("requests", "show", request_id, "--database-url", url)
    [row] = json.loads(invoke("requests", "list", "--json", "--database-url", url))["items"]
    assert row["id"] == request_id


async def _submit(url: str) -> str:
    database = Database.from_url(url)
    try:
        orchestrator = Orchestrator(database, default_workflows())
        view = await orchestrator.submit(
            "research", sample_research_payloads()["type2_diabetes_adults"], "svc-cli"
        )
        return str(view.id)
    finally:
        await database.dispose()
