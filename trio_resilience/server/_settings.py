"""Server settings: defaults, ``SERVER_*`` environment variables, a ``.env`` file."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from dotenv import dotenv_values
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LogFormat = Literal["json", "console"]
_DNS_NAME = re.compile(r"[a-z0-9_.-]+")  # a host name or an IPv4 address


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
    crud_max_items: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="Records each CRUD collection holds; a POST beyond is a 507.",
    )
    crud_key_retention: float = Field(
        86_400.0,
        gt=0,
        le=86_400 * 30,
        description=(
            "Seconds the X-Request-ID of a deleted CRUD record is kept (a POST "
            "replaying it gets 410); keys of existing records never expire."
        ),
    )
    log_level: LogLevel = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_format: LogFormat = Field("json", description="json or console.")
    log_file: Path | None = Field(
        None, description="Append logs to this file instead of standard output."
    )
    enable_docs: bool = Field(True, description="Serve /openapi.json and /docs.")
    metrics_enabled: bool = Field(
        True, description="Count requests and jobs; serve them at GET /metrics."
    )
    cors_enabled: bool = Field(False, description="Answer CORS requests.")
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Allowed CORS origins (comma-separated in the environment)."
    )
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description=(
            "Host header names accepted besides the loopback ones (comma-separated "
            "in the environment; * = any). Empty: only loopback names when bound "
            "to a loopback address, any host otherwise."
        ),
    )
    control_token: SecretStr | None = Field(
        None,
        min_length=1,
        description=(
            "When set, every request but GET, HEAD and OPTIONS (and GET "
            "/metrics too) needs Authorization: Bearer <token>; never logged or "
            "printed."
        ),
    )
    job_workers: int = Field(4, ge=1, le=1000, description="Job queue workers.")
    job_queue_size: int = Field(
        1000, ge=1, le=1_000_000, description="Jobs that may wait before a 503."
    )
    job_timeout: float | None = Field(
        300.0,
        gt=0,
        le=86_400,
        description="Seconds a job may run (default 300); unset = no limit.",
    )
    job_result_ttl: float = Field(
        3600.0, gt=0, le=86_400 * 7, description="Seconds finished jobs are kept."
    )
    job_max_retained_bytes: int = Field(
        32 * 1024 * 1024,
        ge=0,
        le=1 << 40,
        description=(
            "JSON bytes (payload and results) that finished jobs may take together, "
            "oldest dropped first; waiting jobs' payloads may take as much again."
        ),
    )
    job_max_result_bytes: int = Field(
        1024 * 1024,
        ge=0,
        le=1 << 40,
        description="JSON bytes one job's results (intermediate and final) may take.",
    )
    max_body_bytes: int = Field(
        1024 * 1024,
        ge=1,
        le=1 << 40,
        description="Bytes a request body may have; a larger one is refused (413).",
    )
    shutdown_grace_period: float = Field(
        10.0, ge=0, le=3600, description="Seconds in-flight requests get at shutdown."
    )
    journal_size: int = Field(
        1000, ge=1, le=1_000_000, description="Requests kept by the request journal."
    )
    max_fault_rules: int = Field(
        1000, ge=1, le=100_000, description="Fault rules kept at once (POST /faults)."
    )
    state_url: str | None = Field(
        None,
        pattern=r"^(redis|rediss|unix)://",
        description=(
            "Where shared state lives: unset = in this process's memory; "
            "redis://host:port/db = in Redis, shared by every worker."
        ),
    )
    workers: int = Field(
        1,
        ge=1,
        le=256,
        description="Worker processes (more than 1 needs state_url).",
    )
    job_lease_seconds: float = Field(
        10.0,
        gt=0,
        le=3600,
        description=(
            "With Redis: seconds a running job's lease lasts without a heartbeat; "
            "a job whose worker died is run again by another after this."
        ),
    )
    job_max_attempts: int = Field(
        3,
        ge=1,
        le=100,
        description=(
            "With Redis: runs a job gets when workers die under it; then it fails."
        ),
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

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(p.strip().lower() for p in value.split(",") if p.strip())
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _bare_host_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        names = tuple(name.lower() for name in value)
        for name in names:
            if name != "*" and not _DNS_NAME.fullmatch(name) and not _is_ipv6(name):
                raise ValueError(f"not a host name (no scheme or port): {name!r}")
        return names

    @model_validator(mode="after")
    def _shared_state_for_workers(self) -> ServerSettings:
        if self.workers > 1 and self.state_url is None:
            raise ValueError(
                f"workers={self.workers} needs state_url (SERVER_STATE_URL, "
                "--state-url redis://host:port/db): each worker process would keep "
                "its own failure injection, idempotency cache, stores and jobs"
            )
        return self

    @classmethod
    def from_env(
        cls, *, env_file: str | Path | None = ".env", **overrides: Any
    ) -> ServerSettings:
        """Settings from ``SERVER_*`` variables and ``env_file``, then ``overrides``.

        Overrides whose value is None are ignored, so unset command-line flags fall
        through to the environment. An optional setting given empty
        (``SERVER_JOB_TIMEOUT=``) is unset (None). Unknown ``SERVER_*`` keys are
        ignored here; `unknown_env_keys` lists them. Raises
        `pydantic.ValidationError` on bad values.
        """
        given = {name: value for name, value in overrides.items() if value is not None}
        loaded = _EnvironmentSettings(_env_file=env_file, **given)
        return cls.model_validate(loaded.model_dump())

    @classmethod
    def unknown_env_keys(
        cls,
        *,
        env_file: str | Path | None = ".env",
        environ: Mapping[str, str] | None = None,
    ) -> list[tuple[str, str]]:
        """The ``SERVER_*`` keys `from_env` would ignore, as (key, where) pairs.

        ``where`` is ``"environment"`` (``environ``, default `os.environ`) or
        ``"env_file"``; keys are as written, matched without regard to case as
        `from_env` matches them. A missing ``env_file`` has no keys.
        """
        prefix = _EnvironmentSettings.model_config.get("env_prefix", "").lower()
        sources: list[tuple[str, Iterable[str]]] = [
            ("environment", os.environ if environ is None else environ)
        ]
        if env_file is not None and Path(env_file).is_file():
            sources.append(("env_file", dotenv_values(env_file, encoding="utf-8")))
        return [
            (key, where)
            for where, keys in sources
            for key in keys
            if key.lower().startswith(prefix)
            and key[len(prefix) :].lower() not in cls.model_fields
        ]


def _is_ipv6(name: str) -> bool:
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        ipaddress.IPv6Address(name)
    except ValueError:
        return False
    return True


class _EnvironmentSettings(BaseSettings, ServerSettings):
    model_config = SettingsConfigDict(
        env_prefix="SERVER_",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _empty_means_unset(cls, data: Any) -> Any:
        """An optional setting given as an empty string (``SERVER_JOB_TIMEOUT=`` in
        a .env file, or in the environment) is unset: None, whatever its default.

        Other settings keep the empty string, which their validation refuses (an
        empty host or port is a mistake, not a choice).
        """
        if not isinstance(data, dict):
            return data
        return {
            name: None if value == "" and _accepts_none(cls, name) else value
            for name, value in data.items()
        }


def _accepts_none(settings: type[BaseSettings], name: str) -> bool:
    field = settings.model_fields.get(name)
    return field is not None and type(None) in get_args(field.annotation)
