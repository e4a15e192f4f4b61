"""The key check the front door applies to every route whose table entry needs a key."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from proxy.errors import AuthError
from proxy.secret import Secret

KeyCheck = Callable[[Mapping[str, str]], None]
"""Checks request headers (lower-case names); raises AuthError when they lack a valid key."""


def master_key_check(key: Secret | None) -> KeyCheck:
    """Returns a check of `Authorization: Bearer`, `x-api-key` or `api-key` against `key`.

    With no master key configured every request passes. The check raises AuthError when a
    master key is set and the headers lack it.
    """

    def check(headers: Mapping[str, str]) -> None:
        if key is None:
            return
        given = headers.get("authorization")
        if given is not None:
            scheme, _, token = given.partition(" ")
            given = token.strip() if scheme.lower() == "bearer" else given.strip()
        else:
            given = headers.get("x-api-key") or headers.get("api-key")
        if not given or not key.matches(given):
            raise AuthError()

    return check
