"""Google OAuth access tokens for the deployments that call Google Cloud (`vertex_ai/`),
fetched and refreshed through google-auth (the `[google]` extra), off the event loop.

One set of credentials per deployment, built at its first request from the service account
JSON the config resolved (`config/vertex.py`), else from Application Default Credentials.
google-auth decides when a token is due for refresh (a few minutes before it expires); the
refresh, a blocking HTTP call to the credentials' `token_uri`, runs in a worker thread, one
at a time per deployment, so concurrent requests wait for the same new token.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from proxy.config.types import Deployment
from proxy.config.vertex import CREDENTIALS
from proxy.errors import UpstreamError
from proxy.secret import Secret

log = logging.getLogger("llmproxy")
T = TypeVar("T")

WIRES = frozenset({"vertex_ai"})
"""The wires whose deployments authenticate with a Google access token."""
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


class GoogleTokens:
    """Current access tokens by deployment (see the module docstring)."""

    def __init__(self) -> None:
        self._credentials: dict[str, tuple[str, Any]] = {}
        """Deployment id -> (its credentials JSON, google-auth's Credentials)."""
        self._locks: dict[str, asyncio.Lock] = {}
        self._session: Any = None

    async def authorize(self, dep: Deployment, budget: float) -> Deployment:
        """Returns `dep` with a valid access token as its `key` (other deployments as they are).

        Raises:
            UpstreamError: no token: the token endpoint refused the credentials (401, the key
                rejected) or could not be reached in `budget` seconds (504), both retryable.
        """
        if dep.wire not in WIRES:
            return dep
        text = dep.credentials[CREDENTIALS].reveal() if CREDENTIALS in dep.credentials else ""
        known = self._credentials.get(dep.id)
        if known is None or known[0] != text or not known[1].valid:
            lock = self._locks.setdefault(dep.id, asyncio.Lock())
            async with lock:
                known = self._credentials.get(dep.id)
                if known is None or known[0] != text or not known[1].valid:
                    known = (text, await self._refresh(dep, text, known, budget))
                    self._credentials[dep.id] = known
        return dataclasses.replace(dep, key=Secret(str(known[1].token)))

    async def run(
        self, dep: Deployment, budget: float, call: Callable[[Deployment], Awaitable[T]]
    ) -> T:
        """Returns `call(dep)` made with `dep`'s current token (see `authorize`); a token the
        upstream refuses (401) is dropped, so the next request fetches a new one.

        Raises:
            UpstreamError: from `authorize` or from `call`.
        """
        if dep.wire not in WIRES:
            return await call(dep)
        authorized = await self.authorize(dep, budget)
        try:
            return await call(authorized)
        except UpstreamError as err:
            if err.status == 401:
                self._credentials.pop(dep.id, None)
            raise

    async def _refresh(
        self, dep: Deployment, text: str, known: tuple[str, Any] | None, budget: float
    ) -> Any:
        reuse = known[1] if known is not None and known[0] == text else None
        try:
            async with asyncio.timeout(budget):
                return await asyncio.to_thread(self._fetch, text, reuse, budget)
        except TimeoutError:
            reason = f"the token endpoint did not answer within {budget:g}s"
            raise _no_token(dep, reason, 504) from None
        except _TokenError as exc:
            raise _no_token(dep, exc.reason, exc.status) from None

    def _fetch(self, text: str, credentials: Any, timeout: float) -> Any:
        """Builds the credentials when new, and refreshes them (in a worker thread, where
        google-auth is imported too: its first import reads files).

        Raises:
            _TokenError: refused (401) or not reached (502).
        """
        import google.auth.exceptions

        try:
            return self._refreshed(text, credentials, timeout)
        except (
            google.auth.exceptions.RefreshError,
            google.auth.exceptions.DefaultCredentialsError,  # none found: like a missing key
        ) as exc:
            raise _TokenError(401, _first_line(exc)) from None
        except (google.auth.exceptions.GoogleAuthError, ValueError) as exc:
            raise _TokenError(502, _first_line(exc)) from None

    def _refreshed(self, text: str, credentials: Any, timeout: float) -> Any:
        import google.auth
        import google.auth.transport.requests
        import google.oauth2.credentials
        import google.oauth2.service_account

        if credentials is None and not text:
            credentials, _ = google.auth.default(scopes=SCOPES)
        elif credentials is None:
            # Only the two kinds config/vertex.py lets through, each by its own loader.
            info = json.loads(text)
            load: Any = (
                google.oauth2.service_account.Credentials.from_service_account_info
                if info.get("type") == "service_account"
                else google.oauth2.credentials.Credentials.from_authorized_user_info
            )
            credentials = load(info, scopes=SCOPES)
        if self._session is None:
            self._session = google.auth.transport.requests.Request()
        base = self._session

        def request(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", timeout)
            return base(*args, **kwargs)

        credentials.refresh(request)
        return credentials


class _TokenError(Exception):
    """Why no token came (raised in the worker thread, with the status it stands for)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _first_line(exc: BaseException) -> str:
    text = str(exc.args[0] if exc.args else exc) or type(exc).__name__
    return text.splitlines()[0][:300]


def _no_token(dep: Deployment, reason: str, status: int) -> UpstreamError:
    return UpstreamError(
        f"{dep.provider}: no access token: {reason}",
        provider=dep.provider,
        key_id=dep.id,
        status=status,
        retryable=True,
        key_rejected=status == 401,
        code="token_refused" if status == 401 else "token_unavailable",
    )
