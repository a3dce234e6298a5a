"""The ``ledgerflow`` command (Typer + Rich).

Errors are mapped to exit codes in one place (:func:`main`): a ``LedgerflowError`` prints
one line naming the problem and exits 2 (bad input or refusal) or 3 (database); nothing
prints a traceback to an operator.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

from app.cli.audit import audit_cli
from app.cli.clients import clients_cli
from app.cli.common import err_console
from app.cli.db import db_cli
from app.cli.requests import approvals_cli, escalations_cli, requests_cli, requests_group
from app.cli.retention import retention_cli
from app.cli.serve import serve_cli
from app.config import get_settings
from app.database import DatabaseError
from app.exceptions import LedgerflowError
from app.logging import configure_logging

cli = typer.Typer(
    name="ledgerflow",
    help="Durable, audited orchestrator for clinical back-office work.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
cli.add_typer(db_cli, name="db")
cli.add_typer(audit_cli, name="audit")
cli.add_typer(clients_cli, name="clients")
cli.add_typer(requests_group, name="requests")
cli.add_typer(approvals_cli, name="approvals")
cli.add_typer(escalations_cli, name="escalations")
cli.add_typer(retention_cli, name="retention")
cli.registered_commands.extend(serve_cli.registered_commands)
cli.registered_commands.extend(requests_cli.registered_commands)


def _exit_code(exc: LedgerflowError) -> int:
    return 3 if isinstance(exc, DatabaseError) else 2


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the CLI and turn our errors into one line and an exit code."""
    try:
        settings = get_settings()
        configure_logging(settings.log_level, settings.log_format)
        cli(args=list(argv) if argv is not None else None)
    except LedgerflowError as exc:
        err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
        sys.exit(_exit_code(exc))
    except BrokenPipeError:
        # The reader went away (`... | head`): nothing more to say, and nothing to say it to.
        sys.stderr.close()
        sys.exit(1)
    except OSError as exc:
        # A file the operator named could not be read or written (permissions, full disk).
        reason = exc.strerror or str(exc)
        message = f"{exc.filename}: {reason}" if exc.filename else reason
        err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        sys.exit(2)


__all__ = ["cli", "main"]
