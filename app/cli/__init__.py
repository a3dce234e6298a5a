"""The ``ledgerflow`` command (Typer + Rich).

Errors are mapped to exit codes in one place (:func:`main`): a ``LedgerflowError`` prints
one line naming the problem and exits 2 (bad input or refusal) or 3 (database); a file
that cannot be read or written is one line and exit 2; a mistyped command line is one
line and its usage, exit 2. Nothing prints a traceback to an operator.

Command modules import only ``typer`` at module level (see :mod:`app.cli.common`), so
building this tree for ``--help`` loads no database or web code.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

from app.cli.audit import audit_cli
from app.cli.clients import clients_cli
from app.cli.common import command_group
from app.cli.db import db_cli
from app.cli.deliveries import delivery_cli
from app.cli.recordings import recordings_cli
from app.cli.requests import requests_cli, requests_group
from app.cli.retention import retention_cli
from app.cli.reviews import approvals_cli, escalations_cli
from app.cli.serve import serve_cli
from app.exceptions import LedgerflowError

cli = command_group("Durable, audited orchestrator for clinical back-office work.")


@cli.callback()
def _configure() -> None:
    # Runs before any command (not for --help): settings and logging are loaded only when
    # a command is about to do work.
    from app.config import get_settings
    from app.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)


cli.add_typer(db_cli, name="db")
cli.add_typer(audit_cli, name="audit")
cli.add_typer(clients_cli, name="clients")
cli.add_typer(requests_group, name="requests")
cli.add_typer(recordings_cli, name="recordings")
cli.add_typer(approvals_cli, name="approvals")
cli.add_typer(escalations_cli, name="escalations")
cli.add_typer(retention_cli, name="retention")
cli.registered_commands.extend(serve_cli.registered_commands)
cli.registered_commands.extend(requests_cli.registered_commands)
requests_group.registered_commands.extend(delivery_cli.registered_commands)


def _error(message: str) -> None:
    from app.cli.common import stderr

    stderr().print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


def _is_usage_error(exc: BaseException) -> bool:
    # Click's ClickException, whether Typer vendors click (0.20+) or depends on it.
    return any(cls.__name__ == "ClickException" for cls in type(exc).__mro__)


def _usage_error(exc: Exception) -> int:
    """One line for a mistyped command line, then its usage line (no boxed help)."""
    from rich.markup import escape

    if type(exc).__name__ == "NoArgsIsHelpError":
        # A group run without a command: its help is the answer (click's exit code).
        sys.stderr.write(exc.format_message() + "\n")  # type: ignore[attr-defined]
        return int(getattr(exc, "exit_code", 2))

    _error(escape(exc.format_message()))  # type: ignore[attr-defined]  # a ClickException
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        usage = ctx.get_usage().replace("Usage: ", "usage: ", 1)
        sys.stderr.write(f"{usage}  (see {ctx.command_path} --help)\n")
    return int(getattr(exc, "exit_code", 2))


def _exit_code(exc: LedgerflowError) -> int:
    from app.database.exceptions import DatabaseError

    return 3 if isinstance(exc, DatabaseError) else 2


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the CLI and turn our errors into one line and an exit code."""
    try:
        code = cli(
            args=list(argv) if argv is not None else None,
            prog_name="ledgerflow",
            standalone_mode=False,
        )
    except LedgerflowError as exc:
        from rich.markup import escape

        _error(escape(exc.message))
        sys.exit(_exit_code(exc))
    except BrokenPipeError:
        # The reader went away (`... | head`): nothing more to say, and nothing to say it to.
        sys.stderr.close()
        sys.exit(1)
    except OSError as exc:
        # A file the operator named could not be read or written (permissions, full disk).
        from rich.markup import escape

        reason = exc.strerror or str(exc)
        _error(escape(f"{exc.filename}: {reason}" if exc.filename else reason))
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort):
        sys.exit(130)
    except Exception as exc:
        if not _is_usage_error(exc):
            raise
        sys.exit(_usage_error(exc))
    if isinstance(code, int) and code:
        sys.exit(code)


__all__ = ["cli", "main"]
