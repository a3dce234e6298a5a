"""``ledgerflow clients create|list|revoke``: the API's callers and their keys."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from app.cli.common import DatabaseUrlOption, console, err_console
from app.cli.common import database_for as _database
from app.cli.common import run_with as _run

clients_cli = typer.Typer(
    help="Create, list and revoke HTTP API clients (keys are shown once).",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _stamp(value: object) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else ""


@clients_cli.command("create")
def clients_create(
    name: Annotated[str, typer.Argument(help="The client's unique name (its actor in audits).")],
    role: Annotated[
        str, typer.Option("--role", help="submitter | reviewer | auditor | admin")
    ] = "submitter",
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create a client and print its API key (the only time it is shown)."""
    from app.auth.keys import NewClient, create_client

    made: NewClient = _run(_database(database_url), lambda db: create_client(db, name, role))
    if as_json:
        body = {
            "name": made.client.name,
            "role": made.client.role.value,
            "key_prefix": made.client.key_prefix,
            "key": made.key,
        }
        sys.stdout.write(json.dumps(body) + "\n")
        return
    sys.stdout.write(made.key + "\n")
    err_console.print(
        f"created {made.client.role.value} client {made.client.name!r} "
        f"(prefix {made.client.key_prefix}). Store the key now: it is not kept and "
        "cannot be shown again.",
        highlight=False,
        soft_wrap=True,
    )


@clients_cli.command("list")
def clients_list(
    active: Annotated[bool, typer.Option("--active", help="Hide revoked clients.")] = False,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """List clients: name, role, key prefix, created, last used, revoked."""
    from app.auth.keys import list_clients

    clients = _run(_database(database_url), lambda db: list_clients(db, include_revoked=not active))
    if as_json:
        rows = [
            {
                "name": c.name,
                "role": c.role.value,
                "key_prefix": c.key_prefix,
                "created_at": _stamp(c.created_at),
                "last_used_at": _stamp(c.last_used_at) or None,
                "revoked_at": _stamp(c.revoked_at) or None,
            }
            for c in clients
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(title="API clients")
    for column in ("name", "role", "key prefix", "created", "last used", "revoked"):
        table.add_column(column, overflow="fold")
    for c in clients:
        table.add_row(
            c.name,
            c.role.value,
            c.key_prefix,
            _stamp(c.created_at),
            _stamp(c.last_used_at),
            _stamp(c.revoked_at),
        )
    console.print(table)


@clients_cli.command("revoke")
def clients_revoke(
    name: Annotated[str, typer.Argument(help="The client to revoke.")],
    database_url: DatabaseUrlOption = None,
) -> None:
    """Revoke a client's key at once (its next call gets 401)."""
    from app.auth.keys import revoke_client

    revoked = _run(_database(database_url), lambda db: revoke_client(db, name))
    console.print(
        f"revoked {revoked.name!r} (prefix {revoked.key_prefix}) at {_stamp(revoked.revoked_at)}",
        highlight=False,
    )
