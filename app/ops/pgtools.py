"""Finding and running the PostgreSQL client tools (``pg_dump``, ``pg_restore``, ``psql``).

The tools are looked for in ``PG_BIN_DIR``, then on ``PATH``, then in the usual package
folders (``/usr/lib/postgresql/<version>/bin``, newest first). Connection settings travel
in libpq environment variables (``PGHOST``, ``PGPASSWORD`` ...), never on the command line,
so a password never shows in a process listing.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

from sqlalchemy.engine import URL

from app.ops.exceptions import ToolMissing

#: Package folders searched after ``PG_BIN_DIR`` and ``PATH`` (globs, newest version first).
_PACKAGE_DIRS = (
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/usr/local/pgsql/bin",
    "/opt/homebrew/opt/libpq/bin",
    "/usr/local/opt/libpq/bin",
)


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", str(path))) or (0,)


def find_tool(name: str, bin_dir: Path | None = None) -> Path:
    """The path of PostgreSQL client tool ``name``, or ``ToolMissing`` saying where we looked."""
    if bin_dir is not None:
        candidate = bin_dir / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    for pattern in _PACKAGE_DIRS:
        root = Path("/")
        for folder in sorted(root.glob(pattern.lstrip("/")), key=_version_key, reverse=True):
            candidate = folder / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
    where = f"PG_BIN_DIR ({bin_dir}), " if bin_dir else ""
    raise ToolMissing(
        f"{name}: not found in {where}PATH or {', '.join(_PACKAGE_DIRS)} — install the "
        "PostgreSQL client tools (e.g. `apt install postgresql-client`) or set PG_BIN_DIR"
    )


def libpq_env(url: URL) -> dict[str, str]:
    """The process environment plus libpq variables naming ``url``'s server and database."""
    env = dict(os.environ)
    for var in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSERVICE"):
        env.pop(var, None)
    env["PGHOST"] = url.host or "localhost"
    env["PGPORT"] = str(url.port or 5432)
    if url.username:
        env["PGUSER"] = url.username
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    env["PGDATABASE"] = url.database or ""
    ssl = url.query.get("sslmode") or url.query.get("ssl")
    if isinstance(ssl, str):
        env["PGSSLMODE"] = {"true": "require", "false": "disable"}.get(ssl.lower(), ssl)
    return env


async def run_tool(tool: Path, args: list[str], env: dict[str, str]) -> str:
    """Run ``tool args``; return its standard output, or raise ``RuntimeError(error line)``."""
    process = await asyncio.create_subprocess_exec(
        str(tool),
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(first_error_line(err, f"{tool.name} exited {process.returncode}"))
    return out.decode("utf-8", "replace")


def first_error_line(stderr: bytes, default: str) -> str:
    """The first line of a tool's standard error that says something, else ``default``."""
    for line in stderr.decode("utf-8", "replace").splitlines():
        if line.strip():
            return line.strip()
    return default
