"""``ledgerflow clients create|list|revoke``: the API's callers and their keys."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from app.cli.common import (
    DatabaseUrlOption,
    JsonOption,
    Refused,
    command_group,
    database_for,
    run_with,
    say,
    stdout,
)
from app.cli.tables import Column, add_row, new_table

clients_cli = command_group(
    "HTTP API clients and their keys. Create, list and revoke clients (a key is shown once); "
    "set their webhooks."
)


def _stamp(value: object) -> str:
    return str(value.isoformat()) if hasattr(value, "isoformat") else ""


def _when(value: object) -> str:
    return str(value.strftime("%Y-%m-%d %H:%M")) if hasattr(value, "strftime") else ""


@clients_cli.command("create")
def clients_create(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="The client's unique name (its actor in audits).")
    ],
    role: Annotated[
        str, typer.Option("--role", help="submitter | reviewer | auditor | admin")
    ] = "submitter",
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create a client and print its API key (the only time it is shown).

    Always names the database the key was written to: a key made in another database than
    the server's is refused by the server as unknown.
    """
    from app.auth.keys import NewClient, create_client

    database = database_for(database_url, announce=True)
    made: NewClient = run_with(database, lambda db: create_client(db, name, role))
    if as_json:
        body = {
            "name": made.client.name,
            "role": made.client.role.value,
            "key_prefix": made.client.key_prefix,
            "key": made.key,
            "webhook_secret": made.webhook_secret,
        }
        sys.stdout.write(json.dumps(body) + "\n")
        return
    sys.stdout.write(made.key + "\n")
    say(
        f"created {made.client.role.value} client {made.client.name!r} "
        f"(prefix {made.client.key_prefix}). Store the key now: it is not kept and "
        "cannot be shown again."
    )
    say(f"webhook secret (verifies its callbacks; see docs/webhooks.md): {made.webhook_secret}")


@clients_cli.command("webhook")
def clients_webhook(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The client.")],
    url: Annotated[
        str | None,
        typer.Option("--url", help="Default callback URL of its requests (https)."),
    ] = None,
    clear_url: Annotated[
        bool, typer.Option("--clear-url", help="Remove the default callback URL.")
    ] = False,
    rotate_secret: Annotated[
        bool,
        typer.Option("--rotate-secret", help="Make a new webhook secret and print it (once)."),
    ] = False,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Set a client's default callback URL, or rotate its webhook secret.

    Callbacks sent after a rotation are signed with the new secret only.
    """
    from app.auth.keys import KEEP, set_webhook
    from app.config import get_settings

    if url is not None and clear_url:
        raise Refused("--url and --clear-url: give one of them")
    target = None if clear_url else (KEEP if url is None else url)
    allow = get_settings().webhook_allow_http_loopback
    done = run_with(
        database_for(database_url),
        lambda db: set_webhook(
            db, name, url=target, rotate_secret=rotate_secret, allow_http_loopback=allow
        ),
    )
    if as_json:
        body = {"name": done.client.name, "callback_url": done.client.callback_url}
        if done.secret is not None:
            body["webhook_secret"] = done.secret
        sys.stdout.write(json.dumps(body) + "\n")
        return
    if done.secret is not None:
        sys.stdout.write(done.secret + "\n")
        say(f"new webhook secret for {name!r}: store it now, it cannot be shown again.")
    say(f"{name!r} callback URL: {done.client.callback_url or '(none)'}")


@clients_cli.command("list")
def clients_list(
    active: Annotated[bool, typer.Option("--active", help="Hide revoked clients.")] = False,
    as_json: JsonOption = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """List clients: name, role, key prefix, created, last used, revoked."""
    from app.auth.keys import list_clients

    clients = run_with(
        database_for(database_url), lambda db: list_clients(db, include_revoked=not active)
    )
    if as_json:
        rows = [
            {
                "name": c.name,
                "role": c.role.value,
                "key_prefix": c.key_prefix,
                "created_at": _stamp(c.created_at),
                "last_used_at": _stamp(c.last_used_at) or None,
                "revoked_at": _stamp(c.revoked_at) or None,
                "callback_url": c.callback_url,
            }
            for c in clients
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = new_table(
        "API clients",
        [
            Column("name", max_width=24),
            Column("role"),
            Column("key prefix"),
            Column("created (UTC)"),
            Column("last used (UTC)"),
            Column("revoked (UTC)"),
        ],
    )
    for c in clients:
        add_row(
            table,
            c.name,
            c.role.value,
            c.key_prefix,
            _when(c.created_at),
            _when(c.last_used_at),
            _when(c.revoked_at),
        )
    stdout().print(table)


@clients_cli.command("revoke")
def clients_revoke(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The client to revoke.")],
    database_url: DatabaseUrlOption = None,
) -> None:
    """Revoke a client's key at once (its next call gets 401)."""
    from app.auth.keys import revoke_client

    revoked = run_with(database_for(database_url), lambda db: revoke_client(db, name))
    stdout().print(
        f"revoked {revoked.name!r} (prefix {revoked.key_prefix}) at {_stamp(revoked.revoked_at)}",
        highlight=False,
    )
