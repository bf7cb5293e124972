"""ServerSettings: defaults from the seeds, the environment, .env files, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from trio_resilience.server import ServerSettings, hypercorn_config


def test_defaults() -> None:
    """The defaults are the seeds' (bound to 127.0.0.1 rather than every address)."""
    settings = ServerSettings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.max_concurrency == 50
    assert settings.request_timeout == 30
    assert settings.cache_max_size == 1000
    assert settings.cache_ttl_seconds == 300
    assert settings.log_level == "INFO"
    assert settings.log_format == "json"
    assert settings.enable_docs is True
    assert settings.cors_enabled is False
    assert settings.cors_origins == ()
    assert settings.shutdown_grace_period == 10
    assert settings.keep_alive_timeout == 5


def test_constructor_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """ServerSettings(...) is exactly what it is given; only from_env reads SERVER_*."""
    monkeypatch.setenv("SERVER_MAX_CONCURRENCY", "7")
    assert ServerSettings().max_concurrency == 50
    assert ServerSettings.from_env(env_file=None).max_concurrency == 7


def test_from_env_reads_variables_and_env_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Variables win over the .env file; overrides win over both; None is ignored."""
    env_file = tmp_path / ".env"
    env_file.write_text(
        "SERVER_PORT=9001\nSERVER_LOG_LEVEL=debug\nSERVER_REQUEST_TIMEOUT=5\n"
        "SERVER_CORS_ORIGINS=http://a.test, http://b.test\n"
    )
    monkeypatch.setenv("SERVER_REQUEST_TIMEOUT", "7.5")
    settings = ServerSettings.from_env(env_file=env_file, port=None, host="::1")
    assert settings.port == 9001
    assert settings.log_level == "DEBUG"
    assert settings.request_timeout == 7.5
    assert settings.host == "::1"
    assert settings.cors_origins == ("http://a.test", "http://b.test")


def test_missing_env_file_is_fine(tmp_path: Path) -> None:
    """A .env file that does not exist is skipped."""
    assert ServerSettings.from_env(env_file=tmp_path / "nope").port == 8000


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_concurrency", 0),
        ("port", 70_000),
        ("request_timeout", 0),
        ("cache_max_size", 0),
        ("cache_ttl_seconds", -1),
        ("log_level", "LOUD"),
        ("log_format", "xml"),
        ("keep_alive_timeout", 0),
        ("keep_alive_timeout", 3601),
    ],
)
def test_invalid_values(field: str, value: object) -> None:
    """Out-of-range values are rejected with the field named."""
    with pytest.raises(ValidationError, match=field):
        ServerSettings(**{field: value})  # type: ignore[arg-type]


def test_unknown_fields_are_rejected() -> None:
    """A misspelled setting is an error, not silently ignored."""
    with pytest.raises(ValidationError, match="max_concurency"):
        ServerSettings(max_concurency=3)  # type: ignore[call-arg]


def test_frozen() -> None:
    """Settings are immutable."""
    settings = ServerSettings()
    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]


def test_keep_alive_timeout_from_the_environment_reaches_hypercorn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SERVER_KEEP_ALIVE_TIMEOUT sets Hypercorn's keep_alive_timeout; the grace
    period sets its graceful_timeout."""
    monkeypatch.setenv("SERVER_KEEP_ALIVE_TIMEOUT", "0.75")
    monkeypatch.setenv("SERVER_SHUTDOWN_GRACE_PERIOD", "2")
    config = hypercorn_config(ServerSettings.from_env(env_file=None))
    assert config.keep_alive_timeout == 0.75
    assert config.graceful_timeout == 2
