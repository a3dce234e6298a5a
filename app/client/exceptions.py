"""Errors of the client library: the API's refusals, a server that never answered, a
download that does not match its manifest.

Tree::

    ClientError
    ├── ProblemError              the API answered with an error (RFC 9457 problem+json)
    │   ├── BadRequest            400: malformed body or query
    │   ├── Unauthorized          401: no key, or a key the server does not know
    │   ├── Forbidden             403: the key's role may not do this
    │   ├── NotFound              404: no such request, recording or file (or not yours)
    │   ├── Conflict              409: idempotency conflict, illegal transition, not ready
    │   ├── Gone                  410: purged by retention
    │   ├── PreconditionFailed    412: the transcript changed since the version you sent
    │   ├── ContentTooLarge       413: body, upload or correction too large
    │   ├── InvalidInput          422: a field is invalid (``problem.errors`` names each)
    │   ├── PreconditionRequired  428: a correction without its version
    │   ├── RateLimited           429: still refused after the retries (``retry_after``)
    │   └── ServerError           5xx
    │       └── ServiceUnavailable   503: still unavailable after the retries
    ├── TransportFailed           no answer (refused, reset, timed out) after the retries
    └── DigestMismatch            a downloaded file's SHA-256 or size is not the manifest's

Every :class:`ProblemError` carries the server's :class:`~app.api.problems.Problem`
(``title``, ``detail``, ``status``, ``code``, ``field``, ``errors``); its message is
``"404 Not found: no request ..."``.
"""

from __future__ import annotations

from pathlib import Path

from app.api.problems import Problem
from app.exceptions import LedgerflowError


class ClientError(LedgerflowError):
    """The ledgerflow API could not be used."""

    code = "client_error"


class ProblemError(ClientError):
    """The API refused the call."""

    code = "problem"

    def __init__(self, problem: Problem) -> None:
        super().__init__(f"{problem.status} {problem.title}: {problem.detail}")
        #: The RFC 9457 problem the server sent (or one made from a non-JSON error answer).
        self.problem = problem

    @property
    def status(self) -> int:
        """The HTTP status."""
        return self.problem.status

    @property
    def title(self) -> str:
        """The problem's short title (``Not found``)."""
        return self.problem.title

    @property
    def detail(self) -> str:
        """What was wrong, naming the field or the id."""
        return self.problem.detail


class BadRequest(ProblemError):
    """The body or query could not be read."""

    code = "bad_request"


class Unauthorized(ProblemError):
    """The API key is missing or unknown."""

    code = "unauthorized"


class Forbidden(ProblemError):
    """The key's role may not do this."""

    code = "forbidden"


class NotFound(ProblemError):
    """No such request, recording or file (or it belongs to someone else)."""

    code = "not_found"


class Conflict(ProblemError):
    """The call conflicts with the current state."""

    code = "conflict"


class Gone(ProblemError):
    """Retention purged what was asked for."""

    code = "gone"


class PreconditionFailed(ProblemError):
    """The version sent in ``If-Match`` is no longer the current one."""

    code = "precondition_failed"


class ContentTooLarge(ProblemError):
    """The body, upload or text is too large."""

    code = "content_too_large"


class InvalidInput(ProblemError):
    """A field is invalid."""

    code = "invalid_input"


class PreconditionRequired(ProblemError):
    """The call needs ``If-Match``."""

    code = "precondition_required"


class RateLimited(ProblemError):
    """Too many requests are waiting; still refused after the retries."""

    code = "rate_limited"

    @property
    def retry_after(self) -> int | None:
        """The seconds the server last asked to wait."""
        return self.problem.retry_after


class ServerError(ProblemError):
    """The server failed."""

    code = "server_error"


class ServiceUnavailable(ServerError):
    """The service is unavailable (its database, usually); still so after the retries."""

    code = "service_unavailable"


class TransportFailed(ClientError):
    """No answer from the API after the retries (connection refused, reset or timed out)."""

    code = "transport_failed"


class DigestMismatch(ClientError):
    """A downloaded file does not match the SHA-256 or size its manifest gives."""

    code = "digest_mismatch"

    def __init__(self, message: str, *, path: Path, expected: str, actual: str) -> None:
        super().__init__(message)
        #: Where the file would have been written (the partial file is removed).
        self.path = path
        self.expected = expected
        self.actual = actual


_BY_STATUS: dict[int, type[ProblemError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    412: PreconditionFailed,
    413: ContentTooLarge,
    422: InvalidInput,
    428: PreconditionRequired,
    429: RateLimited,
    503: ServiceUnavailable,
}


def error_for(problem: Problem) -> ProblemError:
    """The typed error for a problem: by status, else :class:`ServerError` for 5xx."""
    kind = _BY_STATUS.get(problem.status)
    if kind is None:
        kind = ServerError if problem.status >= 500 else ProblemError
    return kind(problem)


__all__ = [
    "BadRequest",
    "ClientError",
    "Conflict",
    "ContentTooLarge",
    "DigestMismatch",
    "Forbidden",
    "Gone",
    "InvalidInput",
    "NotFound",
    "PreconditionFailed",
    "PreconditionRequired",
    "ProblemError",
    "RateLimited",
    "ServerError",
    "ServiceUnavailable",
    "TransportFailed",
    "Unauthorized",
    "error_for",
]
