"""structlog, configured once for the whole program, with PHI and secrets masked.

People at a terminal get readable console lines; production (no terminal, or
``LOG_FORMAT=json``) gets one JSON object per line. Standard-library loggers (uvicorn,
alembic, sqlalchemy) are routed through the same processors so every line looks alike.
Context such as ``request_id`` or ``worker_id`` is bound once with
``structlog.contextvars.bound_contextvars`` and appears on every line below it.

Every line, structlog's or the standard library's, passes :class:`MaskSensitive` just
before it is rendered (``LOG_MASK_ENABLED``, on by default): the value of a sensitive key
(``LOG_MASK_KEYS``, default :data:`DEFAULT_MASK_KEYS`; any key containing ``password``,
``secret``, ``token`` or ``api_key``) becomes ``[masked]`` at any depth of nested dicts and
lists, and inside every string (the event text, exception text and tracebacks included)
passwords in URLs, ``key=value`` / ``"key": "value"`` pairs of sensitive keys and bearer
tokens are masked too. Exceptions are rendered to text first so that they can be masked.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import structlog
from structlog.typing import ExceptionRenderer

#: What a masked value becomes.
MASK = "[masked]"

#: Keys masked by default: patient identifiers and demographics, clinical free text, and
#: credentials. ``LOG_MASK_KEYS`` (comma-separated) replaces this list.
DEFAULT_MASK_KEYS: frozenset[str] = frozenset(
    {
        # patient identity and demographics
        "patient_id",
        "patient",
        "patient_name",
        "name",
        "first_name",
        "last_name",
        "full_name",
        "given_name",
        "family_name",
        "mrn",
        "ssn",
        "birth_date",
        "date_of_birth",
        "dob",
        "address",
        "street",
        "city",
        "zip",
        "zip_code",
        "postal_code",
        "phone",
        "email",
        # clinical free text
        "transcript",
        "transcript_text",
        "text",
        "dictation",
        "hypothesis",
        "reference",
        # credentials
        "api_key",
        "x_api_key",
        "authorization",
        "password",
        "passwd",
        "secret",
        "token",
        "access_token",
        "refresh_token",
        "key_hash",
        "hmac_key",
        "audit_hmac_key",
    }
)
#: Any key containing one of these is a credential, whatever the configured list says.
_CREDENTIAL_PARTS = ("password", "secret", "token", "api_key")
#: Any key containing one of these names a patient or holds dictated text, whatever the
#: configured list says (``patient_ids``, ``ref_patient_id``, ``transcript_preview``).
_PHI_PARTS = ("patient", "transcript")
_ALWAYS_PARTS = _CREDENTIAL_PARTS + _PHI_PARTS

_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)[^@\s/]+@")
_BEARER = re.compile(r"(?i)\b(?P<head>bearer\s+)[A-Za-z0-9\-._~+/]+=*")
_PLAIN = (str, int, float, bool, type(None))


def _normalise(key: str) -> str:
    return key.strip().lower().replace("-", "_")


class MaskSensitive:
    """A structlog processor that masks sensitive keys and secrets in strings, at any depth.

    Keys starting with ``_`` (structlog's own ``_record`` and ``_from_structlog``) and the
    renderer's bookkeeping (``level``, ``logger``, ``timestamp``) are left alone.
    """

    _SKIP = frozenset({"level", "logger", "timestamp", "logger_name"})

    def __init__(self, keys: Iterable[str] = DEFAULT_MASK_KEYS) -> None:
        self.keys = frozenset(_normalise(k) for k in keys if k.strip())
        names = sorted(self.keys | set(_CREDENTIAL_PARTS), key=len, reverse=True)
        # key=value, key: value, "key": "value", 'key'='value' inside free text.
        self._pairs = re.compile(
            r"(?i)(?P<head>[\"']?\b[\w\-]*(?:"
            + "|".join(re.escape(n).replace("_", "[_\\-]") for n in names)
            + r")\b[\"']?\s*[:=]\s*)(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;&)\]}]+)"
        )

    def is_sensitive(self, key: Any) -> bool:
        """True when values under ``key`` are masked."""
        if not isinstance(key, str):
            return False
        name = _normalise(key)
        return name in self.keys or any(part in name for part in _ALWAYS_PARTS)

    def _pair(self, match: re.Match[str]) -> str:
        head = match.group("head")
        key = head.strip(" \t\"':=")
        if not self.is_sensitive(key):
            return match.group(0)
        value = match.group("value")
        quote = value[0] if value[:1] in ("'", '"') else ""
        return f"{head}{quote}{MASK}{quote}"

    def mask_text(self, text: str) -> str:
        """``text`` with URL passwords, bearer tokens and sensitive ``key=value`` masked."""
        text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}@", text)
        text = _BEARER.sub(lambda m: f"{m.group('head')}{MASK}", text)
        return self._pairs.sub(self._pair, text)

    def mask_value(self, value: Any) -> Any:
        """A masked copy of ``value`` (dicts and lists are copied, never changed in place)."""
        if isinstance(value, str):
            return self.mask_text(value)
        if isinstance(value, _PLAIN):
            return value
        if isinstance(value, Mapping):
            return {
                k: MASK if self.is_sensitive(k) else self.mask_value(v) for k, v in value.items()
            }
        if isinstance(value, list | tuple | set | frozenset):
            return [self.mask_value(v) for v in value]
        # Anything else (exceptions, models, paths) is rendered as text, then masked.
        return self.mask_text(str(value))

    def __call__(self, _logger: Any, _name: str, event_dict: Any) -> Any:
        if "exc_info" in event_dict:
            event_dict = structlog.processors.format_exc_info(_logger, _name, event_dict)
        masked: dict[str, Any] = {}
        for key, value in event_dict.items():
            if isinstance(key, str) and (key.startswith("_") or key in self._SKIP):
                masked[key] = value
            elif self.is_sensitive(key) and key != "event":
                masked[key] = MASK
            else:
                masked[key] = self.mask_value(value)
        return masked


def parse_mask_keys(raw: str) -> frozenset[str]:
    """``LOG_MASK_KEYS`` as a set; empty means :data:`DEFAULT_MASK_KEYS`."""
    keys = frozenset(_normalise(k) for k in raw.split(",") if k.strip())
    return keys or DEFAULT_MASK_KEYS


def _mask_settings() -> tuple[bool, frozenset[str]]:
    from app.config import get_settings
    from app.exceptions import ConfigurationError

    try:
        settings = get_settings()
    except ConfigurationError:
        # Logging must come up even when settings are broken (to report that); mask with
        # the defaults, the safe choice.
        return True, DEFAULT_MASK_KEYS
    return settings.log_mask_enabled, parse_mask_keys(settings.log_mask_keys)


_configured = False


def configure_logging(
    level: str = "INFO",
    fmt: str = "auto",
    *,
    force: bool = False,
    mask: bool | None = None,
    mask_keys: Collection[str] | None = None,
) -> None:
    """Configure structlog and stdlib logging; later calls are no-ops unless ``force``.

    ``mask`` and ``mask_keys`` default to ``LOG_MASK_ENABLED`` and ``LOG_MASK_KEYS``.
    """
    global _configured
    if _configured and not force:
        return
    if mask is None or mask_keys is None:
        enabled, keys = _mask_settings()
        mask = enabled if mask is None else mask
        mask_keys = keys if mask_keys is None else mask_keys
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    # Masked exceptions arrive as text: print it as it is (structlog before 26.1 warns on
    # every masked exception when asked for pretty ones).
    exceptions: ExceptionRenderer = structlog.dev.default_exception_formatter
    if mask:
        exceptions = structlog.dev.plain_traceback
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=exceptions
        )
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    # Masking needs exception text, so exceptions are rendered to text before it runs (the
    # console then prints that text instead of its own coloured traceback).
    last: list[Any] = (
        [MaskSensitive(mask_keys)]
        if mask
        else [structlog.processors.format_exc_info if use_json else _identity]
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *last,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("sqlalchemy.engine", "aiosqlite", "asyncio", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    _configured = True


def _identity(_logger: Any, _name: str, event_dict: Any) -> Any:
    return event_dict


def get_logger(name: str | None = None) -> Any:
    """Return a structlog logger; bind request context through contextvars, not arguments."""
    return structlog.get_logger(name)
