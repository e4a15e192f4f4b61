"""Who may call a route that needs a key: the master key when one is set, else, on a loopback
proxy, only a client that is not a web page (the browser guard).

Without a master key anything on this machine may call the proxy, and so could any web page
the user visits: a cross-site POST, or DNS rebinding (a name of the attacker's that resolves to
127.0.0.1). The guard refuses a `Host` that does not name the proxy and an `Origin` of any
other site; curl, the SDKs and agents send neither such header, so they never notice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from urllib.parse import urlsplit

from proxy.access import MASTER, Caller
from proxy.access.book import VirtualKeys
from proxy.errors import AuthError, ProxyError
from proxy.secret import Secret

KeyCheck = Callable[[Mapping[str, str]], Caller]
"""Checks request headers (lower-case names) and returns the caller (`access.MASTER` for the
master key, or a virtual key's); raises AuthError when they lack a valid key."""
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
"""The names a keyless proxy always answers to (with its listen address)."""
ECHOED = 64
"""Characters of a refused Host or Origin echoed in the error."""


def master_key_check(key: Secret | None, keys: VirtualKeys | None = None) -> KeyCheck:
    """Returns a check of `Authorization: Bearer`, `x-api-key` or `api-key` against `key`,
    then against the virtual keys in `keys`.

    With no master key configured every request passes (as the master). The check raises
    AuthError (401) when a master key is set and the headers hold neither it nor a usable
    virtual key (unknown: `invalid_api_key`, blocked: `key_blocked`, expired: `key_expired`).
    The master key is compared first, so its requests never hash anything.
    """

    def check(headers: Mapping[str, str]) -> Caller:
        if key is None:
            return MASTER
        given = headers.get("authorization")
        if given is not None:
            scheme, _, token = given.partition(" ")
            given = token.strip() if scheme.lower() == "bearer" else given.strip()
        else:
            given = headers.get("x-api-key") or headers.get("api-key")
        if not given:
            raise AuthError()
        if key.matches(given):
            return MASTER
        caller = keys.identify(given) if keys is not None else None
        if caller is None or keys is None:
            raise AuthError()
        keys.check(caller, None)  # blocked or expired: 401
        return caller

    return check


def route_check(
    key: Secret | None,
    listen_host: str,
    allowed_hosts: Iterable[str],
    keys: VirtualKeys | None = None,
) -> KeyCheck:
    """Returns the check of every route that needs a key.

    Args:
        key: the master key; when set, it and the virtual keys are the only gate.
        listen_host: the address the proxy listens on (a name it answers to).
        allowed_hosts: `general_settings.allowed_hosts`; `*` turns the browser guard off.
        keys: the virtual keys (served only with a master key).
    """
    if key is not None:
        return master_key_check(key, keys)
    names = {_normal(name) for name in (*LOOPBACK_NAMES, listen_host, *allowed_hosts)}
    if "*" in names:
        return master_key_check(None)
    return browser_guard(frozenset(names))


def browser_guard(names: frozenset[str]) -> KeyCheck:
    """Returns a check that `Host` and `Origin`, when sent, name one of `names` (any port).

    The check raises ProxyError (403) for a `Host` or `Origin` naming another site, an
    `Origin: null` (sandboxed frames, file pages) included.
    """

    def check(headers: Mapping[str, str]) -> Caller:
        host = headers.get("host")
        if host is not None and _host_name(host) not in names:
            raise _refused("Host", host, "host_not_allowed")
        origin = headers.get("origin")
        if origin is not None and _origin_name(origin) not in names:
            raise _refused("Origin", origin, "origin_not_allowed")
        return MASTER

    return check


def _host_name(host: str) -> str | None:
    """Returns the name in a `Host` value (`name`, `name:port`, `[v6]:port`), normalized."""
    host = host.strip()
    if host.startswith("["):
        end = host.find("]")
        return None if end < 0 else _normal(host[1:end])
    name, colon, port = host.rpartition(":")
    return _normal(name if colon and port.isdigit() else host)


def _origin_name(origin: str) -> str | None:
    try:
        name = urlsplit(origin.strip()).hostname
    except ValueError:
        return None
    return None if name is None else _normal(name)


def _normal(name: str) -> str:
    return name.strip().strip("[]").rstrip(".").lower()


def _refused(header: str, value: str, code: str) -> ProxyError:
    shown = ascii(value[:ECHOED]) + ("..." if len(value) > ECHOED else "")
    return ProxyError(
        f"{header} {shown} does not name this proxy. Without a master key it answers only to "
        "its own names (web pages may not use it): add the name to "
        "general_settings.allowed_hosts, or set general_settings.master_key.",
        status=403,
        type="invalid_request_error",
        code=code,
    )
