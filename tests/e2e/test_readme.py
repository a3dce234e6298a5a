"""The README, exactly true: its walk-through runs verbatim against a live ``ledgerflow serve``
started as ``scripts/start.sh`` starts it, its PostgreSQL block runs, every command and
option it names exists, and it links nothing outside the repository.

How blocks are found and checked (``<!-- not-run: why -->``, ``<!-- expect: TEXT -->``) is
described in :mod:`tests.support.readme`; a block added to the walk-through section is run
by :func:`test_the_walkthrough_runs_verbatim_against_a_live_server` without changing it.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer.main

from app.cli import cli
from app.config import Settings
from tests.databases import BACKENDS, PG_ADMIN_URL
from tests.support.readme import Block, blocks, run_blocks, section
from tests.support.serve import free_port

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
WALKTHROUGH = "A walk through"
pytestmark = pytest.mark.slow


def user_env() -> dict[str, str]:
    """The environment of a person at a fresh shell: no ledgerflow setting is set, and a
    terminal 100 columns wide (the width the CLI's tables are laid out for)."""
    settings = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k not in settings and k != "VIRTUAL_ENV"}
    return {**env, "COLUMNS": "100"}


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A working directory that looks like the repository after ``scripts/start.sh``
    installed it: ``.venv`` (this test's interpreter), ``scripts`` and ``tests`` (the
    audio fixtures); ``data/`` is made by the commands themselves."""
    work = tmp_path / "checkout"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    for name in ("scripts", "tests"):
        (work / name).symlink_to(ROOT / name, target_is_directory=True)
    return work


def start_steps() -> list[str]:
    """What ``scripts/start.sh`` runs after installing: its lines calling ``.venv/bin/``."""
    lines = (ROOT / "scripts" / "start.sh").read_text(encoding="utf-8").splitlines()
    after_install = lines[max(i for i, line in enumerate(lines) if line == "fi") + 1 :]
    steps = [ln for ln in after_install if ln.startswith((".venv/bin/", "exec .venv/bin/"))]
    assert steps and steps[-1].startswith("exec .venv/bin/ledgerflow serve"), steps
    return steps


def _ready(base: str, server: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text()[-4000:]
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"the server did not get ready:\n{log.read_text()[-4000:]}")


@pytest.fixture
def served(checkout: Path) -> Iterator[tuple[int, Path]]:
    """``scripts/start.sh``'s steps in the checkout: init, seed, then serve on a free port."""
    env = user_env()
    *setup, serve = start_steps()
    for step in setup:
        done = subprocess.run(
            ["bash", "-c", step], cwd=checkout, env=env, capture_output=True, text=True,
            timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (step, done.stdout, done.stderr)
    port = free_port()
    log = checkout.parent / "serve.log"
    command = serve.removeprefix("exec ").replace('"$@"', f"--port {port}")
    with log.open("wb") as out:
        server = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=checkout,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _ready(f"http://127.0.0.1:{port}", server, log)
        yield port, log
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0, log.read_text()[-4000:]
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _explain(script: list[Block], outputs: list[str], index: int, log: Path) -> str:
    block = script[index]
    return (
        f"README block at line {block.line} failed:\n{block.code}\n--- its output ---\n"
        f"{outputs[index][-4000:]}\n--- server log ---\n{log.read_text()[-3000:]}"
    )


def test_the_walkthrough_runs_verbatim_against_a_live_server(
    served: tuple[int, Path], checkout: Path
) -> None:
    port, log = served
    script = blocks(README, WALKTHROUGH)
    assert len(script) >= 5 and sum(len(b.expect) for b in script) >= 5
    outcome = run_blocks(script, checkout, user_env(), port, timeout=420)
    if outcome.failed is not None:
        raise AssertionError(_explain(script, outcome.outputs, outcome.failed, log))
    for index, block in enumerate(script):
        said = " ".join(outcome.outputs[index].split())  # a table may wrap a cell's words
        for text in block.expect:
            assert " ".join(text.split()) in said, _explain(script, outcome.outputs, index, log)


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="PostgreSQL tests are not selected")
def test_the_postgresql_block_starts_an_api_and_a_worker(
    checkout: Path, postgres_factory: Any
) -> None:
    [block] = blocks(README, "Configuration")
    name = f"lf_readme_{uuid.uuid4().hex[:8]}"
    # The two changes the test makes: its own database name, and a free port (API_PORT).
    code = block.code.replace("5432/ledgerflow", f"5432/{name}")
    code = code.replace("postgres ledgerflow", f"postgres {name}")
    assert name in code and "5432/ledgerflow" not in code
    port = free_port()
    log = checkout.parent / "pg.log"
    with log.open("wb") as out:
        shell = subprocess.Popen(
            ["bash", "-c", f"set -euo pipefail\n{code}\nwait"],
            cwd=checkout,
            env={**user_env(), "API_PORT": str(port)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _ready(f"http://127.0.0.1:{port}", shell, log)
        deadline = time.monotonic() + 60
        while "worker_started" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.3)
        assert "worker_started" in log.read_text(), log.read_text()[-3000:]
    finally:
        os.killpg(shell.pid, signal.SIGTERM)
        shell.wait(timeout=60)
        admin = PG_ADMIN_URL.rsplit("/", 1)[0] + "/postgres"
        subprocess.run(
            ["psql", admin, "-c", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip


# --------------------------------------------------------------------------- no server


def _commands() -> dict[str, set[str]]:
    """``"requests list"`` → its options, for every command of the CLI."""
    found: dict[str, set[str]] = {}

    def walk(command: Any, path: tuple[str, ...]) -> None:
        children = getattr(command, "commands", None)
        if children is None:
            found[" ".join(path)] = {o for p in command.params for o in getattr(p, "opts", ())}
            return
        for child_name, child in children.items():
            walk(child, (*path, child_name))

    walk(typer.main.get_command(cli), ())
    return found


def _mentions() -> list[str]:
    """Every ``ledgerflow ...`` the README shows: in code spans, table cells, code blocks."""
    spans = re.findall(r"`(?:\.venv/bin/)?(ledgerflow [^`]+)`", README)
    fenced = "\n".join(re.findall(r"^```\w*\n(.*?)^```", README, re.M | re.S))
    # In shell code a command ends at a pipe, a closing parenthesis, a ; or a comment.
    code = re.findall(r"(?<![\w-])(?:\.venv/bin/)?(ledgerflow [^|)#;\n]+)", fenced)
    return [m.strip() for m in spans + code]


def test_every_command_and_option_the_readme_names_exists() -> None:
    commands = _commands()
    mentions = _mentions()
    assert len(mentions) > 20
    for mention in mentions:
        words = [w for w in re.split(r"[\s\[\]]+", mention.split("#")[0]) if w]
        assert words[0] == "ledgerflow", mention
        # "requests list\|show ID\|cancel ID": every alternative after the group is a command.
        group = words[1]
        names = [group] if group in commands else []
        for word in words[2:]:
            for alternative in word.replace("\\|", "|").split("|"):
                if f"{group} {alternative}" in commands:
                    names.append(f"{group} {alternative}")
        assert names, f"README names an unknown command: {mention}"
        known = set().union(*(commands[n] for n in names))
        for option in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", mention):
            assert option in known, f"README: {mention!r}: no option {option} on {names}"


def test_the_readme_links_and_paths_stay_inside_the_repository() -> None:
    for target in re.findall(r"\]\(([^)]+)\)", README):
        if target.startswith(("http://", "https://", "#")):
            continue
        path = (ROOT / target.split("#")[0]).resolve()
        assert path.is_relative_to(ROOT) and path.exists(), target
    assert "../" not in README
    for path in re.findall(r"`((?:app|docs|scripts|tests|bench)/[\w./-]+)`", README):
        assert (ROOT / path.rstrip("/")).exists(), path
    for script in re.findall(r"(scripts/\w+\.(?:py|sh))", README):
        assert (ROOT / script).exists(), script


def test_the_readme_settings_and_seed_options_are_real() -> None:
    _, configuration = section(README, "Configuration")
    fields = {name.upper() for name in Settings.model_fields}
    named = {
        v
        for row in configuration
        if row.startswith("| `")
        for v in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])
    }
    assert len(named) > 15 and named <= fields, named - fields
    usage = subprocess.run(
        [sys.executable, "scripts/seed_db.py", "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    seed = re.search(r"`python scripts/seed_db.py ([^`]+)`", README)
    assert seed is not None
    for option in re.findall(r"--[a-z-]+", seed.group(1)):
        assert option in usage, option
    assert shlex.split("bash scripts/start.sh") and (ROOT / "scripts/test.sh").exists()
