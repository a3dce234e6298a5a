"""One machine-output flag (``--json``) on every list and show command, ``--database-url``
on every command, and commands that say which database they used."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer.main
from sqlalchemy.engine import URL, make_url

from app.bootstrap import Services
from app.cli import cli
from tests.cli.conftest import Run, escalated_request, gated_request, typed

ROOT = Path(__file__).resolve().parents[2]


def leaf_commands() -> Iterator[tuple[str, Any]]:
    """Every runnable command as ``("requests list", click_command)``."""

    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
        children = getattr(command, "commands", None)
        if children is None:
            yield " ".join(path), command
            return
        for name, child in children.items():
            yield from walk(child, (*path, name))

    yield from walk(typer.main.get_command(cli), ())


def options(command: Any) -> set[str]:
    return {opt for param in command.params for opt in getattr(param, "opts", ())}


#: Commands that list or show something (and so must offer --json).
SHOWING = ("list", "show", "status", "query", "trail", "current", "verify", "checkpoint")


def test_every_command_takes_database_url_and_every_list_or_show_takes_json() -> None:
    commands = dict(leaf_commands())
    assert {"requests list", "audit query", "submit", "serve", "worker"} <= set(commands)
    for path, command in commands.items():
        assert "--database-url" in options(command), path
        if path.split()[-1] in SHOWING:
            assert "--json" in options(command), path
        # One machine-output flag: --format only where several formats exist.
        if "--format" in options(command):
            assert path in ("audit query", "audit trail", "audit export"), path


async def test_json_output_of_every_list_and_show_command_parses(
    run: Run, url: str, services: Services
) -> None:
    request_id = str(await gated_request(services))
    await escalated_request(services)
    await run("clients", "create", "svc-json", "--database-url", url)
    outputs: dict[str, Any] = {}
    for command in (
        ["requests", "list"],
        ["requests", "show", typed(request_id)],
        ["status", typed(request_id)],
        ["approvals", "list"],
        ["escalations", "list"],
        ["clients", "list"],
        ["audit", "query"],
        ["audit", "trail", typed(request_id)],
        ["audit", "verify"],
        ["audit", "checkpoint"],
        ["db", "current"],
        ["retention", "purge", "--dry-run"],
    ):
        result = await run(*command, "--json", "--database-url", url)
        assert result.code == 0, (command, result.err)
        outputs[" ".join(command[:2])] = json.loads(result.out)
    assert [r["id"] for r in outputs["requests list"]["items"]][-1] == request_id
    assert outputs["approvals list"][0]["summary"]["output"]["criteria"]["inclusion_codes"]
    assert outputs["escalations list"][0]["reason"] == "incomplete_requirements"
    assert outputs["audit verify"]["ok"] is True
    assert outputs["db current"]["at_head"] is True
    assert {r["request_id"] for r in outputs["audit trail"]} == {request_id}
    # --json is --format json; asking for two formats at once is refused.
    same = await run("audit", "query", "--format", "json", "--database-url", url)
    assert json.loads(same.out)[0]["event_type"] == outputs["audit query"][0]["event_type"]
    clash = await run("audit", "query", "--json", "--format", "csv", "--database-url", url)
    assert (clash.code, clash.err) == (2, "error: --json: not with --format csv\n")


async def test_clients_create_always_names_its_database_without_the_password(
    run: Run, database_url: URL
) -> None:
    url = database_url
    if url.get_backend_name() == "postgresql":
        # Trust authentication ignores the password, so the command works with one given.
        url = url.set(password="s3cret-pw")
    made = await run(
        "clients", "create", "svc-where", "--database-url", url.render_as_string(False)
    )
    assert made.code == 0, made.err
    first = made.err.splitlines()[0]
    if url.get_backend_name() == "sqlite":
        assert first == f"database: sqlite {url.database}"
    else:
        assert first == f"database: postgresql {url.host}:{url.port}/{url.database}"
    assert "s3cret" not in made.err + made.out


def test_a_command_on_a_terminal_names_its_database_and_in_a_pipe_it_does_not(
    database_url: URL, tmp_path: Path
) -> None:
    url = database_url.render_as_string(hide_password=False)
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT), "LOG_FORMAT": "json"}
    args = [sys.executable, "-m", "app.cli", "requests", "list", "--json"]
    leader, follower = pty.openpty()
    try:
        on_tty = subprocess.run(
            args, env=env, stdout=subprocess.PIPE, stderr=follower, timeout=60, check=False
        )
        os.close(follower)
        said = os.read(leader, 4096).decode()
    finally:
        os.close(leader)
    assert on_tty.returncode == 0 and json.loads(on_tty.stdout)["items"] == []
    where = make_url(url)
    described = (
        f"sqlite {where.database}"
        if where.get_backend_name() == "sqlite"
        else f"postgresql {where.host}:{where.port}/{where.database}"
    )
    assert said.strip() == f"database: {described}"

    piped = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert piped.returncode == 0 and piped.stderr == ""
