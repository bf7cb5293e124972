"""Server settings: defaults, ``SERVER_*`` environment variables, a ``.env`` file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LogFormat = Literal["json", "console"]


class ServerSettings(BaseModel):
    """Everything the test server can be told, as one frozen, validated value.

    ``ServerSettings(...)`` uses only the defaults and the arguments given, so tests
    get exactly what they ask for; `from_env` adds ``SERVER_*`` environment
    variables and a ``.env`` file, as the command line does.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field("127.0.0.1", min_length=1, description="Address to bind to.")
    port: int = Field(8000, ge=0, le=65535, description="Port to bind to; 0 = any.")
    max_concurrency: int = Field(
        50, ge=1, le=100_000, description="Requests handled at once."
    )
    request_timeout: float = Field(
        30.0, gt=0, le=3600, description="Seconds a request may take in all."
    )
    queue_timeout: float | None = Field(
        None,
        ge=0,
        le=3600,
        description=(
            "Seconds a request may wait for a concurrency slot before a 503; "
            "unset = until its request_timeout runs out."
        ),
    )
    cache_max_size: int = Field(
        1000, ge=1, le=10_000_000, description="Idempotency cache entries kept."
    )
    cache_ttl_seconds: float = Field(
        300.0, gt=0, le=86_400 * 7, description="Seconds an idempotent answer lives."
    )
    log_level: LogLevel = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_format: LogFormat = Field("json", description="json or console.")
    log_file: Path | None = Field(
        None, description="Append logs to this file instead of standard output."
    )
    enable_docs: bool = Field(True, description="Serve /openapi.json and /docs.")
    cors_enabled: bool = Field(False, description="Answer CORS requests.")
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Allowed CORS origins (comma-separated in the environment)."
    )
    job_workers: int = Field(4, ge=1, le=1000, description="Job queue workers.")
    job_queue_size: int = Field(
        1000, ge=1, le=1_000_000, description="Jobs that may wait before a 503."
    )
    job_timeout: float | None = Field(
        None, gt=0, le=86_400, description="Seconds a job may run; unset = no limit."
    )
    job_result_ttl: float = Field(
        3600.0, gt=0, le=86_400 * 7, description="Seconds finished jobs are kept."
    )
    shutdown_grace_period: float = Field(
        10.0, ge=0, le=3600, description="Seconds in-flight requests get at shutdown."
    )
    keep_alive_timeout: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="Seconds an idle keep-alive connection is kept open.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_format(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @classmethod
    def from_env(
        cls, *, env_file: str | Path | None = ".env", **overrides: Any
    ) -> ServerSettings:
        """Settings from ``SERVER_*`` variables and ``env_file``, then ``overrides``.

        Overrides whose value is None are ignored, so unset command-line flags fall
        through to the environment. Raises `pydantic.ValidationError` on bad values.
        """
        given = {name: value for name, value in overrides.items() if value is not None}
        loaded = _EnvironmentSettings(_env_file=env_file, **given)
        return cls.model_validate(loaded.model_dump())


class _EnvironmentSettings(BaseSettings, ServerSettings):
    model_config = SettingsConfigDict(
        env_prefix="SERVER_",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )
