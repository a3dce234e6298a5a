from __future__ import annotations

import pytest

from app.config import Settings, parse_database_url
from app.exceptions import ConfigurationError


def test_default_database_is_sqlite_in_data_folder() -> None:
    url = Settings(_env_file=None).database  # type: ignore[call-arg]
    assert url.drivername == "sqlite+aiosqlite"
    assert url.database == "./data/ledgerflow.db"


@pytest.mark.parametrize(
    ("raw", "driver"),
    [
        ("postgresql://u@h/db", "postgresql+asyncpg"),
        ("postgres://u@h/db", "postgresql+asyncpg"),
        ("sqlite:///x.db", "sqlite+aiosqlite"),
    ],
)
def test_plain_urls_get_the_async_driver(raw: str, driver: str) -> None:
    assert parse_database_url(raw).drivername == driver


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("not a url", "cannot parse"),
        ("mysql://u@h/db", "unsupported driver 'mysql'"),
        ("sqlite+pysqlite:///x.db", "unsupported driver"),
        ("sqlite+aiosqlite://", "needs a file path"),
    ],
)
def test_bad_database_url_is_one_line_naming_the_setting(raw: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_database_url(raw)
    assert info.value.message.startswith("DATABASE_URL: ")
    assert fragment in info.value.message
    assert "\n" not in info.value.message


def test_settings_refuse_a_bad_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "oracle://x/y")
    with pytest.raises(ConfigurationError, match="DATABASE_URL: unsupported driver 'oracle'"):
        Settings(_env_file=None)  # type: ignore[call-arg]
