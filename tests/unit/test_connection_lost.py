"""Which driver errors mean the connection is gone (it must leave the pool), without a
database: the texts and codes asyncpg raises."""

from __future__ import annotations

import pytest
from asyncpg.exceptions import ConnectionDoesNotExistError
from asyncpg.exceptions._base import InternalClientError

from app.database.exceptions import connection_lost


@pytest.mark.parametrize(
    "error",
    [
        # A backend killed mid-query can leave asyncpg's protocol in either state.
        InternalClientError("cannot perform operation: another operation is in progress"),
        InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
        ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        ConnectionResetError(),
    ],
    ids=repr,
)
def test_a_connection_left_mid_operation_counts_as_lost(error: BaseException) -> None:
    assert connection_lost(error)


def test_an_error_from_a_live_connection_does_not() -> None:
    assert not connection_lost(InternalClientError('relation "requests" does not exist'))
    assert not connection_lost(ConnectionRefusedError())
