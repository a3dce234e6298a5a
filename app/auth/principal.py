"""Who is acting, and what their role lets them do: the rules every entry point shares.

The HTTP API (bearer keys), the web console (sessions opened with a key) and the CLI all
turn a caller into a :class:`Principal` and ask it the same questions, so a page shows
exactly what the equivalent API call would return. The service layers (e.g.
:mod:`app.results`) take the principal asking; its ``channel`` and ``origin`` say how the
call came in, for the records of reads and refusals.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from app.auth.keys import Role


@dataclass(frozen=True)
class Origin:
    """Where a call came in, as an ``access_denied`` record names it."""

    #: ``GET``/``PUT``… for HTTP, ``CLI`` for the command line, ``CALL`` for Python.
    method: str
    #: The route template (``/v1/recordings/{recording_id}``), command or function.
    route: str
    #: The concrete path or command (identifiers only, never clinical content).
    path: str


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the API client's name (the audit actor), role and key prefix."""

    name: str
    role: Role
    key_prefix: str | None = None
    #: ``http``, ``console``, ``cli`` or ``python``: recorded with every PHI access.
    channel: str = "python"
    #: The call being made, for the record of a refusal (``None``: the service names it).
    origin: Origin | None = None
    #: The API client's default ``callback_url`` for the requests it submits.
    callback_url: str | None = None

    def has(self, *roles: Role) -> bool:
        """True when the caller is one of ``roles`` or an admin."""
        return self.role == Role.ADMIN or self.role in roles

    def owns(self, submitted_by: str) -> bool:
        """True unless the caller is a submitter and the request is someone else's.

        Submitters see and steer only their own requests; every other role that may reach
        a request at all may reach every request.
        """
        return self.role != Role.SUBMITTER or submitted_by == self.name

    def at(self, origin: Origin, channel: str | None = None) -> Principal:
        """The same caller, making the call ``origin`` (through ``channel``)."""
        return replace(self, origin=origin, channel=channel or self.channel)
