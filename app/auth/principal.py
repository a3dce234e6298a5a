"""Who is acting, and what their role lets them do: the rules every entry point shares.

The HTTP API (bearer keys) and the web console (sessions opened with a key) both turn a
caller into a :class:`Principal` and ask it the same questions, so a page shows exactly
what the equivalent API call would return.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.auth.keys import Role


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the API client's name (the audit actor), role and key prefix."""

    name: str
    role: Role
    key_prefix: str

    def has(self, *roles: Role) -> bool:
        """True when the caller is one of ``roles`` or an admin."""
        return self.role == Role.ADMIN or self.role in roles

    def owns(self, submitted_by: str) -> bool:
        """True unless the caller is a submitter and the request is someone else's.

        Submitters see and steer only their own requests; every other role that may reach
        a request at all may reach every request.
        """
        return self.role != Role.SUBMITTER or submitted_by == self.name
