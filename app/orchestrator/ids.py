"""Ids people can type: a unique prefix of at least six hex digits stands for the whole id.

:func:`resolve_id` turns what someone typed (a full UUID, or the first digits of one, with
or without hyphens, any case) into the one id it names. A prefix is one range query on the
primary key, ``id >= <prefix>000… AND id <= <prefix>fff…``, an index range scan on both
backends: PostgreSQL compares native ``uuid`` values in byte order and SQLite compares the
32-digit lowercase hex text SQLAlchemy stores, and both orders agree with the hex digits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from app.orchestrator.exceptions import InvalidRequest, NotFound

if TYPE_CHECKING:
    from sqlalchemy import FromClause

    from app.database import Database

#: Fewest hex digits accepted: 16.7 million values, so a clash needs thousands of rows.
MIN_PREFIX = 6
#: Most candidates an ambiguous prefix names.
MAX_CANDIDATES = 10
_HEX = frozenset("0123456789abcdef")

#: What can be named by a prefix: the table whose primary key holds the ids.
Noun = Literal["request", "approval", "escalation", "recording"]


@dataclass(frozen=True)
class IdPrefix:
    """The hex digits someone typed, and the range of ids that start with them."""

    digits: str

    @classmethod
    def parse(cls, text: str, field: str) -> IdPrefix:
        """Read a full id or a prefix; anything else is an ``InvalidRequest`` on ``field``."""
        digits = text.strip().replace("-", "").lower()
        if not digits or not set(digits) <= _HEX or len(digits) > 32:
            raise InvalidRequest(f"{text!r} is not an id or the start of one", field=field)
        if len(digits) < MIN_PREFIX:
            raise InvalidRequest(
                f"{text!r} is too short: type at least {MIN_PREFIX} hex digits of the id",
                field=field,
            )
        return cls(digits)

    @property
    def complete(self) -> bool:
        """True when all 32 digits were given."""
        return len(self.digits) == 32

    @property
    def low(self) -> uuid.UUID:
        """The smallest id with this prefix."""
        return uuid.UUID(self.digits.ljust(32, "0"))

    @property
    def high(self) -> uuid.UUID:
        """The largest id with this prefix."""
        return uuid.UUID(self.digits.ljust(32, "f"))


async def resolve_id(database: Database, noun: Noun, text: str, *, field: str) -> uuid.UUID:
    """The one ``noun`` id that ``text`` names (a full id, or a prefix of ≥ 6 hex digits).

    A full id is returned as it is (the command that uses it says if it does not exist). A
    prefix costs one read on the primary key's index; no match raises ``NotFound``, several
    raise ``InvalidRequest`` on ``field`` listing them.
    """
    prefix = IdPrefix.parse(text, field)
    if prefix.complete:
        return prefix.low
    found = await _ids_between(database, noun, prefix)
    if not found:
        raise NotFound(f"no {noun} id starts with {prefix.digits}")
    if len(found) > 1:
        shown = ", ".join(str(i) for i in found[:MAX_CANDIDATES])
        more = " and more" if len(found) > MAX_CANDIDATES else ""
        raise InvalidRequest(
            f"{prefix.digits} is the start of several {noun} ids ({shown}{more}); "
            "type more of the id",
            field=field,
        )
    return found[0]


async def _ids_between(database: Database, noun: Noun, prefix: IdPrefix) -> list[uuid.UUID]:
    """Up to ``MAX_CANDIDATES + 1`` ids in the prefix's range, in order (one index range)."""
    from sqlalchemy import select

    from app.orchestrator.retry import retrying_read

    table = _table(noun)
    query = (
        select(table.c.id)
        .where(table.c.id >= prefix.low, table.c.id <= prefix.high)
        .order_by(table.c.id)
        .limit(MAX_CANDIDATES + 1)
    )

    @retrying_read
    async def read() -> list[uuid.UUID]:
        async with database.read_session() as session:
            return list((await session.execute(query)).scalars())

    return await read()


def _table(noun: Noun) -> FromClause:
    from app.database import models

    return {
        "request": models.Request,
        "approval": models.Approval,
        "escalation": models.Escalation,
        "recording": models.Recording,
    }[noun].__table__


__all__ = ["MIN_PREFIX", "IdPrefix", "Noun", "resolve_id"]
