"""What every ``ledgerflow`` command shares: output, options, the database, ids, async work.

Only ``typer`` is imported at module level, and command modules follow suit: everything
heavier (SQLAlchemy, pydantic, the orchestrator, Rich tables) is imported inside the
command that needs it, so ``ledgerflow --help`` starts in a fraction of a second.

Conventions every command follows:

- an id argument or option accepts a unique prefix of at least six hex digits, resolved
  by :func:`resolve` (one range query on the primary key);
- ``--json`` prints JSON for scripts on every list and show command (``--format`` only
  where several formats exist, with ``json`` among them);
- ``--database-url`` overrides ``DATABASE_URL`` on every command that touches the
  database, and :func:`database_for` names the database used on standard error when that
  is a terminal (``database: sqlite ./data/ledgerflow.db``);
- tables show ids shortened to :data:`SHORT_ID` characters (``--wide`` shows them whole).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from app.exceptions import LedgerflowError

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console
    from sqlalchemy.engine import URL

    from app.auth import Principal
    from app.database import Database
    from app.orchestrator.engine import Orchestrator
    from app.orchestrator.ids import Noun
    from app.orchestrator.reads import Reader

T = TypeVar("T")

#: Characters of an id shown in tables (``--wide`` shows all 36).
SHORT_ID = 8


def command_group(help: str | None = None) -> typer.Typer:
    """A Typer app for a group of commands (or, without ``help``, to collect top-level ones).

    Help is plain text (``rich_markup_mode=None``): Typer's Rich help pulls in Markdown and
    syntax highlighting, about half of what ``ledgerflow --help`` would otherwise cost.
    """
    return typer.Typer(
        help=help,
        no_args_is_help=help is not None,
        rich_markup_mode=None,
        add_completion=False,
        pretty_exceptions_enable=False,
    )


DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Overrides DATABASE_URL for this command.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
WideOption = Annotated[
    bool, typer.Option("--wide", help="Show whole ids and every column (may exceed 100 columns).")
]


def id_argument(noun: str, metavar: str) -> Any:
    """A positional id argument: a whole id or a unique prefix, named ``metavar`` in errors."""
    return typer.Argument(
        metavar=metavar,
        help=f"The {noun}'s id, or a unique prefix of it (6+ hex digits).",
        show_default=False,
    )


RequestIdArgument = Annotated[str, id_argument("request", "REQUEST_ID")]


class Refused(LedgerflowError):
    """The command refused to act."""

    code = "refused"


def stdout() -> Console:
    """A Rich console on standard output (made per call: it reads ``COLUMNS`` now)."""
    from rich.console import Console

    return Console()


def stderr() -> Console:
    """A Rich console on standard error."""
    from rich.console import Console

    return Console(stderr=True)


def __getattr__(name: str) -> Any:
    # ``console`` and ``err_console`` stay importable for command modules written before
    # the consoles became lazy; each import makes a console bound to the process's stream.
    if name == "console":
        return stdout()
    if name == "err_console":
        return stderr()
    raise AttributeError(name)


def say(message: str) -> None:
    """One line for people on standard error (notes, counts, where things went)."""
    stderr().print(message, highlight=False, soft_wrap=True, markup=False)


def print_json(value: Any) -> None:
    """Print a pydantic model, a list of them, or plain JSON data for scripts."""
    sys.stdout.write(json.dumps(_plain(value), indent=2) + "\n")


def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def short_id(value: uuid.UUID | str | None, wide: bool = False) -> str:
    """An id as tables show it: the first :data:`SHORT_ID` characters, or whole with --wide."""
    if value is None:
        return ""
    return str(value) if wide else str(value)[:SHORT_ID]


def id_shortener(
    ids: Iterable[uuid.UUID | str | None], wide: bool = False
) -> Callable[[uuid.UUID | str | None], str]:
    """How a table shows ``ids``: :data:`SHORT_ID` characters, more when two of them would
    look alike (time-ordered ids share their first digits), all of them with ``--wide``."""
    texts = {str(i) for i in ids if i is not None}
    width = 36
    if not wide:
        width = next(
            (n for n in range(SHORT_ID, 36) if len({t[:n] for t in texts}) == len(texts)), 36
        )

    def shorten(value: uuid.UUID | str | None) -> str:
        return "" if value is None else str(value)[:width]

    return shorten


def one_of(value: str, choices: Iterable[str], option: str) -> str:
    """``value`` if it is one of ``choices``, else a ``Refused`` naming ``option``."""
    known = list(choices)
    if value not in known:
        raise Refused(f"{option}: {value!r} is not one of {', '.join(known)}")
    return value


def writable_file(path: Path, option: str) -> None:
    """Refuse an output path whose folder is missing or not writable (before any work)."""
    import os

    folder = path.parent
    if not folder.is_dir():
        raise Refused(f"{option}: no folder {folder} to write {path.name} in")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise Refused(f"{option}: cannot write {path}")


def actor_of(name: str | None) -> str:
    """Who acts, for the audit trail: ``--as NAME`` if given, else ``cli:$USER``."""
    if name is not None:
        if not name.strip():
            raise Refused("--as: must name who acts")
        return name.strip()
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


#: ``--as`` on the commands that read clinical content or delivered data (each read audited).
ReadAsOption = Annotated[
    str | None,
    typer.Option("--as", help="Who reads (recorded with each read); default cli:$USER."),
]


def operator(name: str, command: str, target: str) -> Principal:
    """The person at the command line as :mod:`app.results` takes them.

    An admin (whoever holds the database URL can read every row anyway) on channel ``cli``,
    with ``ledgerflow <command> <target>`` as the origin a refusal would be recorded with.
    """
    from app.auth import Origin, Principal, Role

    origin = Origin("CLI", command, f"{command} {target}")
    return Principal(name, Role.ADMIN, channel="cli", origin=origin)


def describe_database(url: URL) -> str:
    """``sqlite ./data/ledgerflow.db`` or ``postgresql 127.0.0.1:5432/ledgerflow`` (no password)."""
    from app.database.exceptions import describe_url

    return f"{url.get_backend_name()} {describe_url(url)}"


def database_for(url: str | None, *, announce: bool | None = None) -> Database:
    """The database named by ``--database-url``, else by the settings.

    Names it on standard error in one line (``database: sqlite ./data/ledgerflow.db``)
    when ``announce`` is True, or when it is None and standard error is a terminal: a
    person then sees which database a command used, a script's output stays clean.
    """
    from app.config import parse_database_url
    from app.database import Database

    database = Database.from_url(parse_database_url(url) if url else None)
    if announce or (announce is None and sys.stderr.isatty()):
        say(f"database: {describe_database(database.url)}")
    return database


def run_with(database: Database, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``work(database)`` to completion and dispose of the database's pool afterwards."""
    import asyncio

    async def _go() -> T:
        try:
            return await work(database)
        finally:
            await database.dispose()

    return asyncio.run(_go())


def run_orchestrator(database_url: str | None, work: Callable[[Orchestrator], Awaitable[T]]) -> T:
    """Run ``work`` with an orchestrator on the command's database (no agents loaded).

    Submitting, deciding and cancelling need the workflows' steps but never run an agent,
    so the agents' heavy dependencies (speech recognition, numpy) stay unloaded.
    """
    from app.orchestrator.catalog import default_workflows
    from app.orchestrator.engine import Orchestrator

    async def go(database: Database) -> T:
        return await work(Orchestrator(database, default_workflows()))

    return run_with(database_for(database_url), go)


def run_reader(database_url: str | None, work: Callable[[Reader], Awaitable[T]]) -> T:
    """Run ``work`` with the orchestrator's reads only: no workflow, no write path loaded."""
    from app.orchestrator.reads import Reader

    async def go(database: Database) -> T:
        return await work(Reader(database))

    return run_with(database_for(database_url), go)


async def resolve(database: Database, noun: Noun, text: str, field: str) -> uuid.UUID:
    """The id ``text`` names: a full id, or a unique prefix of at least six hex digits."""
    from app.orchestrator.ids import resolve_id

    return await resolve_id(database, noun, text, field=field)


@contextlib.contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int | None], None]]:
    """A Rich progress bar on standard error, shown only on a terminal.

    Yields ``report(done, total)``; ``total`` may be ``None`` when it is not known.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    console = stderr()
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(label, total=None)

        def report(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield report
