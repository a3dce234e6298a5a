"""Tables for people: ids, times and states on one line each, long text wrapped in its cell.

Every table is built by :func:`new_table` from :class:`Column` specs. A column that is not
``wrap`` never breaks a line (an id cut in two cannot be copied); Rich narrows the ``wrap``
columns first when the terminal is narrow, so the commands choose their default columns to
fit 100 characters with the short ids, and ``--wide`` adds the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table


@dataclass(frozen=True)
class Column:
    """One column: its header, whether its text may wrap, and its widest width."""

    header: str
    #: Long free text (summaries, details, errors) wraps inside its cell.
    wrap: bool = False
    #: Text wider than this is cut with an ellipsis (ignored when ``wrap``).
    max_width: int | None = None
    #: An id: always shown whole, however narrow the terminal (other columns give way).
    whole: bool = False


def new_table(title: str | None, columns: Sequence[Column]) -> Table:
    """An empty table with ``columns``, drawn with a light frame that costs few characters."""
    from rich import box
    from rich.table import Table

    table = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        title_justify="left",
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
    )
    for column in columns:
        table.add_column(
            column.header,
            no_wrap=not column.wrap,
            overflow="fold" if column.wrap else "ellipsis",
            max_width=None if column.wrap else column.max_width,
            # Rich reads min_width as "never narrower": add_row raises it to the widest id.
            min_width=len(column.header) if column.whole else None,
        )
    return table


def show(table: Table, *, wide: bool = False) -> None:
    """Print ``table`` on standard output; ``wide`` lets it grow past the terminal's width
    (``--wide`` asked for whole ids and more columns, not for them to be cut)."""
    from rich.console import Console
    from rich.measure import Measurement

    console = Console()
    if wide:
        needed = Measurement.get(console, console.options.update_width(10_000), table).maximum
        console.width = max(console.width, needed)
    console.print(table)


def add_row(table: Table, *cells: str) -> None:
    """Add a row of plain text (never read as Rich markup: data may hold brackets)."""
    from rich.text import Text

    for column, cell in zip(table.columns, cells, strict=False):
        if column.min_width is not None:
            column.min_width = max(column.min_width, len(cell))
    table.add_row(*(Text(cell) for cell in cells))


def when(moment: datetime | None, *, seconds: bool = True) -> str:
    """A UTC time to the second (``2024-05-01 12:30:05``) or minute, or nothing."""
    if moment is None:
        return ""
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def duration(ms: int | None) -> str:
    """Milliseconds as people read them: ``850 ms``, ``12.3 s``, ``4 min 05 s``."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(round(ms / 1000), 60)
    return f"{minutes} min {seconds:02d} s"


__all__ = ["Column", "add_row", "duration", "new_table", "show", "when"]
