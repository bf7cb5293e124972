"""The OpenAPI document a real server serves: valid, complete, and true to the server.

``openapi-spec-validator`` checks the document against the OpenAPI 3.1 schema; the
other tests pin what the validator cannot see (every operation documents its
success, typed path parameters, the responses the layers around the routes give).
The slow test runs schemathesis against the served document with a fixed seed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from jsonschema_path import SchemaPath
from openapi_spec_validator import OpenAPIV31SpecValidator

from trio_resilience.server import ServerSettings
from trio_resilience.testing import serve_in_background

from .conftest import cli_server

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


async def served_document(**settings: Any) -> dict[str, Any]:
    async with (
        serve_in_background(ServerSettings(log_level="ERROR", **settings)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document: dict[str, Any] = response.json()
    return document


def operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every operation, keyed ``"METHOD /path"``."""
    return {
        f"{method.upper()} {path}": operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


def validation_errors(document: dict[str, Any]) -> list[str]:
    validator = OpenAPIV31SpecValidator(SchemaPath.from_dict(document))
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors()
    ]


@pytest.mark.parametrize("control_token", [None, "s3cret"])
async def test_served_document_is_valid_openapi(control_token: str | None) -> None:
    """openapi-spec-validator finds no error in /openapi.json."""
    document = await served_document(control_token=control_token)
    assert document["openapi"].startswith("3.1")
    assert validation_errors(document) == []


async def test_every_operation_documents_a_success() -> None:
    """Each operation documents at least one 2xx response, with a description."""
    document = await served_document()
    missing = [
        name
        for name, operation in operations(document).items()
        if not any(str(status).startswith("2") for status in operation["responses"])
    ]
    assert missing == []
    undescribed = [
        f"{name} {status}"
        for name, operation in operations(document).items()
        for status, response in operation["responses"].items()
        if not response.get("description")
    ]
    assert undescribed == []


async def test_failure_path_parameters_are_typed_with_their_ranges() -> None:
    """{count} is an integer 0..1,000,000 and {seconds} a number 0..86,400."""
    document = await served_document()
    by_name = {
        name: {p["name"]: p for p in operation["parameters"] if p["in"] == "path"}
        for name, operation in operations(document).items()
    }
    count = by_name["POST /fail/count/{count}"]["count"]
    seconds = by_name["POST /fail/duration/{seconds}"]["seconds"]
    assert count["required"] is True
    assert count["schema"] == {"type": "integer", "minimum": 0, "maximum": 1_000_000}
    assert seconds["required"] is True
    assert seconds["schema"] == {"type": "number", "minimum": 0, "maximum": 86_400}


async def test_msg_documents_request_id_shedding_and_timeouts() -> None:
    """GET /msg documents X-Request-ID, 503 with Retry-After, 504, and that a delay
    at or beyond request_timeout ends in 504."""
    document = await served_document()
    msg = operations(document)["GET /msg"]
    headers = {p["name"]: p for p in msg["parameters"] if p["in"] == "header"}
    request_id = headers["X-Request-ID"]
    assert request_id["required"] is False
    assert request_id["schema"]["minLength"] == 1
    assert request_id["schema"]["maxLength"] == 256
    responses = msg["responses"]
    assert {"200", "400", "422", "500", "503", "504"} <= set(responses)
    assert "Retry-After" in responses["503"]["headers"]
    assert "Idempotent-Replayed" in responses["200"]["headers"]
    delay = next(p for p in msg["parameters"] if p["name"] == "delay")
    assert delay["schema"]["maximum"] == 30_000
    assert "request_timeout" in delay["description"]
    assert "504" in delay["description"]


async def test_shared_responses_follow_the_layers() -> None:
    """Every response names X-Request-ID; limited paths document 503 and 504,
    control paths do not; bodies are required, and writes may be refused with
    413 or 415."""
    document = await served_document()
    every = operations(document)
    for name, operation in every.items():
        for status, response in operation["responses"].items():
            assert "X-Request-ID" in response["headers"], f"{name} {status}"
        assert "400" in operation["responses"], name
        control = ("/fail/", "/faults", "/health", "/metrics", "/requests")
        limited = not name.split(" ", 1)[1].startswith(control)
        assert ("503" in operation["responses"]) is limited, name
        assert ("504" in operation["responses"]) is limited, name
        if "requestBody" in operation:
            assert operation["requestBody"]["required"] is True, name
        if name.startswith(("POST ", "PUT ", "PATCH ")):
            assert {"413", "415"} <= set(operation["responses"]), name
    assert "security" not in every["POST /fail/reset"]
    assert "401" not in every["POST /fail/reset"]["responses"]


async def test_control_token_is_documented_when_set() -> None:
    """With a control token, writes and GET /metrics document 401 and the bearer
    scheme; other reads do not."""
    document = await served_document(control_token="s3cret")
    scheme = document["components"]["securitySchemes"]["controlToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    every = operations(document)
    assert every["POST /fail/reset"]["security"] == [{"controlToken": []}]
    assert (
        "WWW-Authenticate" in every["POST /fail/reset"]["responses"]["401"]["headers"]
    )
    assert "401" not in every["GET /fail/status"]["responses"]
    assert "security" not in every["GET /health"]
    assert every["GET /metrics"]["security"] == [{"controlToken": []}]
    assert "401" in every["GET /metrics"]["responses"]


async def test_operation_ids_are_unique() -> None:
    """No two operations share an operationId (the CRUD groups share functions)."""
    document = await served_document()
    ids = [operation["operationId"] for operation in operations(document).values()]
    assert len(ids) == len(set(ids))


SCHEMATHESIS_CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
SCHEMATHESIS_CONFIG = """\
# 5xx answers the server gives by design: an injected failure (500) once a
# generated POST /fail/* has switched failure injection on, and the 504 of a delay
# beyond the short request_timeout this run uses.
[[operations]]
include-path = "/msg"
checks.not_a_server_error.expected-statuses = ["2XX", "3XX", "4XX", "500", "504"]

# The httpbin-style routes answer the status a request chooses (/status/{codes},
# /drip's code), 5xx included, and /delay's 504 once it reaches request_timeout.
# /drip's timing is pinned well below that timeout, to keep the run short (a
# drip it cuts short ends the connection, which schemathesis reports as a
# failure of the request). /bytes/{n}'s n is pinned too:
# /bytes/0 is an empty body, which (as every response without content) has no
# Content-Type, and no document can say so (the CLI's --checks override any
# per-operation choice of checks).
[[operations]]
include-path-regex = "^/(status/|drip$)"
checks.not_a_server_error.expected-statuses = ["2XX", "3XX", "4XX", "5XX"]

[[operations]]
include-path = "/drip"
parameters = { "query.duration" = 0.1, "query.delay" = 0 }

[[operations]]
include-path = "/delay/{seconds}"
checks.not_a_server_error.expected-statuses = ["2XX", "3XX", "4XX", "504"]

[[operations]]
include-path = "/bytes/{n}"
parameters = { "path.n" = 1024 }
"""


SCHEMATHESIS_HOOKS = """\
# Every fault rule a generated POST /faults creates is deleted at once: a rule
# matching every route (a reset, a hang, a 418) would fail the cases after it in
# ways their operations rightly do not document.
import os
import urllib.request

import schemathesis


@schemathesis.hook
def after_call(ctx, case, response):
    if case.method.upper() == "POST" and case.path == "/faults":
        url = os.environ["FAULTS_URL"]
        urllib.request.urlopen(urllib.request.Request(url, method="DELETE"))
        with open(os.environ["FAULTS_DELETED_LOG"], "a") as log:
            print(response.status_code, file=log)
"""


@pytest.mark.slow
async def test_schemathesis_finds_nothing(tmp_path: Path) -> None:
    """schemathesis (fixed seed, bounded examples) finds no server error, no
    undocumented status or content type and no body off its schema."""
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG)
    (tmp_path / "clear_fault_rules.py").write_text(SCHEMATHESIS_HOOKS)
    deleted_log = tmp_path / "deleted.log"
    # A short request_timeout keeps the generated /msg delays short.
    env = {"SERVER_REQUEST_TIMEOUT": "0.5"}
    async with cli_server(env=env) as server:
        command = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--no-color",
            "--config-file",
            str(config),
            "run",
            f"{server.base_url}/openapi.json",
            "--checks",
            ",".join(SCHEMATHESIS_CHECKS),
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "25",
            "--seed",
            "20261",
            "--workers",
            "1",
            "--no-shrink",
            "--request-timeout",
            "5",
        ]
        with trio.fail_after(120):
            result = await trio.run_process(
                command,
                capture_stdout=True,
                stderr=subprocess.STDOUT,
                check=False,
                cwd=tmp_path,  # its cache of past failures, and the hooks module
                env={
                    **os.environ,
                    "SCHEMATHESIS_HOOKS": "clear_fault_rules",
                    "FAULTS_URL": f"{server.base_url}/faults",
                    "FAULTS_DELETED_LOG": str(deleted_log),
                },
            )
        # The hook ran: every rule a generated POST created is gone again.
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            left = (await client.get("/faults")).json()["rules"]
    output = result.stdout.decode(errors="replace")
    assert result.returncode == 0, output
    statuses = deleted_log.read_text().split()
    assert "201" in statuses, f"no generated POST /faults created a rule: {statuses}"
    assert left == []
