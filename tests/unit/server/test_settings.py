"""ServerSettings: defaults from the seeds, the environment, .env files, overrides."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

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


OPTIONAL = sorted(
    name
    for name, field in ServerSettings.model_fields.items()
    if type(None) in get_args(field.annotation)
)


def test_the_optional_settings_are_found() -> None:
    """The scan below sees the optional settings (finding none would prove nothing)."""
    assert {"queue_timeout", "log_file", "job_timeout"} <= set(OPTIONAL)


@pytest.mark.parametrize("name", OPTIONAL)
def test_an_empty_optional_setting_in_the_env_file_is_unset(
    tmp_path: Path, name: str
) -> None:
    """``SERVER_X=`` (or ``SERVER_X=""``) in .env leaves an optional setting unset."""
    env_file = tmp_path / ".env"
    env_file.write_text(f'SERVER_{name.upper()}=\nSERVER_{name.upper()}=""\n')
    assert getattr(ServerSettings.from_env(env_file=env_file), name) is None
    env_file.write_text(f"SERVER_{name.upper()}=\n")
    assert getattr(ServerSettings.from_env(env_file=env_file), name) is None


@pytest.mark.parametrize("name", OPTIONAL)
def test_an_empty_optional_environment_variable_is_unset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    """An empty ``SERVER_X`` variable unsets an optional setting, .env or not."""
    env_file = tmp_path / ".env"
    env_file.write_text("SERVER_JOB_TIMEOUT=5\nSERVER_QUEUE_TIMEOUT=5\n")
    monkeypatch.setenv(f"SERVER_{name.upper()}", "")
    assert getattr(ServerSettings.from_env(env_file=env_file), name) is None


@pytest.mark.parametrize("name", ["port", "host", "max_concurrency", "enable_docs"])
def test_an_empty_required_setting_is_still_an_error(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """An empty value of a setting that cannot be unset is refused, naming it."""
    monkeypatch.setenv(f"SERVER_{name.upper()}", "")
    with pytest.raises(ValidationError, match=rf"(?m)^{name}$"):
        ServerSettings.from_env(env_file=None)


def test_unknown_keys_are_listed_with_where_they_are(tmp_path: Path) -> None:
    """Unknown SERVER_* keys of the environment and the .env file are listed as
    written; known keys (any case) and other prefixes are not."""
    env_file = tmp_path / ".env"
    env_file.write_text(
        "SERVER_MAX_CONCURENCY=3\nserver_port=1\nOTHER_THING=1\nserver_nope=2\n"
    )
    environ = {"SERVER_LOG_LEVL": "debug", "Server_Host": "::1", "PATH": "/bin"}
    assert ServerSettings.unknown_env_keys(env_file=env_file, environ=environ) == [
        ("SERVER_LOG_LEVL", "environment"),
        ("SERVER_MAX_CONCURENCY", "env_file"),
        ("server_nope", "env_file"),
    ]


def test_unknown_keys_without_an_env_file(tmp_path: Path) -> None:
    """A missing or no env file contributes no keys."""
    environ = {"SERVER_PORT": "1"}
    assert ServerSettings.unknown_env_keys(env_file=None, environ=environ) == []
    missing = tmp_path / "nope"
    assert ServerSettings.unknown_env_keys(env_file=missing, environ=environ) == []
