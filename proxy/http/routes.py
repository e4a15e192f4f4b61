"""The route table: every route the proxy serves, with the key it needs, the wire format its
answers and errors are in, and whether the front door serves it itself (lean) or FastAPI does.

The front door (`door.py`) matches each request against this table and checks the key there,
so no handler can forget to. The table itself is listed in `app.py`.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

from proxy.access import MASTER, Caller
from proxy.errors import ProxyError
from proxy.pipeline import Answer

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Auth(enum.Enum):
    """The key a route needs."""

    NONE = "none"
    """Anyone may call it (the /health family)."""
    KEY = "key"
    """A client's key: the master key or a virtual key."""
    MASTER = "master"
    """The master key only (admin routes): a virtual key gets 403."""
    OWN_KEY = "own_key"
    """The master key, or a virtual key asking about itself (`/key/info`, as LiteLLM)."""


class WireFormat(Protocol):
    """A client wire format as the front door uses it: a module in `proxy/endpoints/`."""

    def render_error(self, err: ProxyError, message: str) -> tuple[int, bytes]:
        """Returns the HTTP status and the JSON body of `err`, with `message` as its text."""
        ...


@dataclass(frozen=True, slots=True)
class Call:
    """One request to a lean route, as its handler gets it: key checked, body read."""

    path: str
    headers: Mapping[str, str]
    """The request headers the front door reads (`door.READ_HEADERS`), lower-case names."""
    request_id: str
    body: bytes
    caller: Caller = MASTER
    """Who is calling: the master key (or a proxy without one) or a virtual key."""


LeanHandler = Callable[[Call], Awaitable[Answer]]
"""Answers a lean route; raises ProxyError for an answer in the route's error shape."""
FastAPIHandler = Callable[[Request], Awaitable[Response]]
"""A FastAPI endpoint; `request.state.request_id` holds the request id, `request.state.caller`
the caller."""


@dataclass(frozen=True)
class Route:
    """One entry of the route table."""

    method: str
    paths: tuple[str, ...]
    handler: LeanHandler | FastAPIHandler
    """A LeanHandler when `lean`, else a FastAPIHandler."""
    auth: Auth
    wire: WireFormat
    """The client wire format of the route's answers and errors (a `proxy.endpoints` module)."""
    lean: bool = False
    """Served by the front door straight through ASGI (the hot routes), not by FastAPI, whose
    per-request machinery cost about a fifth of the proxy's CPU per request there."""
    json_body: bool = False
    """The body must be JSON: a request naming another Content-Type gets 415."""
    prefix: bool = False
    """Each of `paths` ends in `/` and the route serves every path under it (`/v1/models/`
    followed by any model name, slashes included); an exact route wins over a prefix."""

    @property
    def needs_key(self) -> bool:
        return self.auth is not Auth.NONE


class RouteTable:
    """The routes indexed by path and method, for the front door's lookup."""

    def __init__(self, routes: Iterable[Route], default_wire: WireFormat) -> None:
        """Indexes `routes`.

        Args:
            routes: every route; a (method, path) pair may appear once.
            default_wire: the wire format of a 404 on a path no route serves.

        Raises:
            ValueError: two routes serve the same method and path.
        """
        self.routes = tuple(routes)
        self.default_wire = default_wire
        self._by_path: dict[str, dict[str, Route]] = {}
        self._prefixes: list[tuple[str, Route]] = []
        for route in self.routes:
            if route.prefix:
                for path in route.paths:
                    if not path.endswith("/"):
                        raise ValueError(f"a prefix route's path must end in /: {path}")
                    self._prefixes.append((path, route))
                continue
            for path in route.paths:
                # FastAPI redirects a trailing slash to its route (307), as it always did.
                for alias in (path,) if route.lean else (path, path + "/"):
                    by_method = self._by_path.setdefault(alias, {})
                    if route.method in by_method:
                        raise ValueError(f"two routes serve {route.method} {alias}")
                    by_method[route.method] = route

    def get(self, method: str, path: str) -> Route | None:
        """Returns the route serving `method` on `path`, or None."""
        by_method = self._by_path.get(path)
        if by_method is not None:
            return by_method.get(method)
        for start, route in self._prefixes:  # only on a miss: the hot routes are exact
            if route.method == method and path.startswith(start) and len(path) > len(start):
                return route
        return None

    def miss(self, method: str, path: str) -> tuple[ProxyError, WireFormat]:
        """Returns the error for a request `get` found no route for, and its wire format.

        A path no route serves is a 404 in the default format; a method the path does not
        take is a 405 naming the ones it does, in the format of that path's routes.
        """
        by_method = self._by_path.get(path)
        if not by_method:
            err = ProxyError(
                f"Invalid URL ({method} {path}).", status=404, type="invalid_request_error"
            )
            return err, self.default_wire
        allowed = ", ".join(by_method)
        err = ProxyError(
            f"Method {method} is not allowed on {path}; use {allowed}.",
            status=405,
            type="invalid_request_error",
            headers={"allow": allowed},
        )
        return err, next(iter(by_method.values())).wire
