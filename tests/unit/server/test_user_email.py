"""The CRUD demo's email check: syntactic, documented, without email-validator."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import trio.testing
from pydantic import ValidationError

from trio_resilience.server import ServerSettings, create_app
from trio_resilience.server._email import check_email_address
from trio_resilience.server._routes.crud import UserIn

PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"

VALID = [
    "ann@example.com",
    "a@b.co",
    "First.Last+tag@sub.example.org",
    "o'brien@example.ie",
    "user_1-x@mail-server.example",
    "用户@例子.广告",
    "x" * 64 + "@example.com",
    "a@" + "b" * 248 + ".com",  # 254 characters in all
]

INVALID = [
    ("", "it needs exactly one '@'"),
    ("ann", "it needs exactly one '@'"),
    ("ann@@example.com", "it needs exactly one '@'"),
    ("a@b@example.com", "it needs exactly one '@'"),
    ("@example.com", "nothing before the '@'"),
    ("x" * 65 + "@example.com", "more than 64 characters before the '@'"),
    ("ann@", "the domain needs a dot"),
    ("ann@localhost", "the domain needs a dot"),
    ("ann@.example.com", "empty part in the domain"),
    ("ann@example.com.", "empty part in the domain"),
    ("ann@example..com", "empty part in the domain"),
    ("ann smith@example.com", "it contains a space or control character"),
    ("ann@example.com\n", "it contains a space or control character"),
    ("ann\x00@example.com", "it contains a space or control character"),
    ("a@" + "b" * 249 + ".com", "longer than 254 characters"),
]


@pytest.mark.parametrize("address", VALID)
def test_valid_addresses_are_kept_as_given(address: str) -> None:
    """Addresses of the documented shape are accepted unchanged (no case folding)."""
    assert check_email_address(address) == address
    assert UserIn(name="Ann", email=address).email == address


@pytest.mark.parametrize(("address", "reason"), INVALID)
def test_invalid_addresses_say_what_is_wrong(address: str, reason: str) -> None:
    """Each kind of malformed address is refused with its own exact reason."""
    with pytest.raises(ValueError, match=rf"^not an email address: {reason}$"):
        check_email_address(address)


@pytest.mark.parametrize(("address", "reason"), INVALID)
def test_the_user_model_refuses_invalid_addresses(address: str, reason: str) -> None:
    """UserIn refuses every invalid address, naming the email field."""
    with pytest.raises(ValidationError) as caught:
        UserIn(name="Ann", email=address)
    (error,) = caught.value.errors()
    assert error["loc"] == ("email",)


def test_only_strings_are_addresses() -> None:
    """A number is not coerced into an address."""
    with pytest.raises(ValidationError, match="email"):
        UserIn.model_validate({"name": "Ann", "email": 42})


def test_the_schema_documents_an_email_string() -> None:
    """The OpenAPI schema says string, format email, at most 254 characters."""
    schema = UserIn.model_json_schema()["properties"]["email"]
    assert schema == {
        "type": "string",
        "format": "email",
        "maxLength": 254,
        "title": "Email",
    }


async def test_users_over_http(autojump_clock: trio.testing.MockClock) -> None:
    """POST /api/v1/users: a valid address is stored as given (201); an invalid one
    is a 422 naming the email field."""
    app = create_app(ServerSettings(shutdown_grace_period=1))
    async with app.test_app():
        client = app.test_client()
        created = await client.post(
            "/api/v1/users", json={"name": "Ann", "email": "Ann@Example.com"}
        )
        assert created.status_code == 201
        assert (await created.get_json())["email"] == "Ann@Example.com"
        refused = await client.post(
            "/api/v1/users", json={"name": "Ann", "email": "ann@localhost"}
        )
        assert refused.status_code == 422
        assert "email" in str(await refused.get_json())


def test_email_validator_is_no_runtime_dependency() -> None:
    """pyproject.toml's runtime dependencies name neither email-validator nor
    dnspython."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    names = {
        dep.split(";")[0].split("[")[0].split(">")[0].split("=")[0].split("<")[0]
        for dep in project["dependencies"]
    }
    assert {name.strip().lower() for name in names} & {
        "email-validator",
        "email_validator",
        "dnspython",
    } == set()


def test_the_server_never_imports_email_validator() -> None:
    """Building the app (the CRUD models included) imports no email_validator or
    dns module, even where they are installed."""
    code = (
        "import sys\n"
        "from trio_resilience.server import create_app\n"
        "create_app()\n"
        "print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('email_validator', 'dns')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout == "[]\n"
