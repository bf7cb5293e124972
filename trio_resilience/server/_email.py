"""A syntactic email address check for the CRUD demo's users.

The demo stores what clients send so that they can test their retries; it never
sends mail, so it does not need DNS-grade validation (``email-validator``, which
also brings ``dnspython``). `EmailAddress` accepts a string that has the shape
of an address:

- at most 254 characters in all (the longest address SMTP can carry);
- exactly one ``@``;
- a local part (before the ``@``) of 1 to 64 characters;
- a domain (after it) with at least one dot and no empty label (no leading,
  trailing or doubled dot);
- no whitespace or control character anywhere.

The address is kept as given (no case folding, no Unicode normalisation), and it
is not checked any further: a syntactically fine address may still not exist.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

MAX_LENGTH = 254
MAX_LOCAL_LENGTH = 64


def check_email_address(value: str) -> str:
    """``value`` if it has the shape of an email address, else a ValueError saying
    what is wrong with it."""
    if len(value) > MAX_LENGTH:
        raise ValueError(f"not an email address: longer than {MAX_LENGTH} characters")
    if any(char.isspace() or not char.isprintable() for char in value):
        raise ValueError(
            "not an email address: it contains a space or control character"
        )
    if value.count("@") != 1:
        raise ValueError("not an email address: it needs exactly one '@'")
    local, domain = value.split("@")
    if not local:
        raise ValueError("not an email address: nothing before the '@'")
    if len(local) > MAX_LOCAL_LENGTH:
        raise ValueError(
            f"not an email address: more than {MAX_LOCAL_LENGTH} characters "
            "before the '@'"
        )
    if "." not in domain:
        raise ValueError("not an email address: the domain needs a dot")
    if "" in domain.split("."):
        raise ValueError("not an email address: empty part in the domain")
    return value


EmailAddress = Annotated[
    str,
    Field(max_length=MAX_LENGTH, json_schema_extra={"format": "email"}),
    AfterValidator(check_email_address),
]
"""A `str` that `check_email_address` accepts; documented as ``format: email``."""
