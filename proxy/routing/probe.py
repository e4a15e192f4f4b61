"""Key probe: send the provider's cheapest key check (list models) and say what its answer means."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from proxy.config.types import Deployment
from proxy.errors import UpstreamError, UpstreamTimeout
from proxy.providers.base import Provider
from proxy.routing.attempt import connection_error
from proxy.routing.google_auth import GoogleTokens
from proxy.routing.transport import TransportError, UpstreamClient

PROBE_TIMEOUT = 10.0


@dataclass(frozen=True)
class ProbeOutcome:
    """One probe's verdict: the result shown to people, and what the key pool needs."""

    result: dict[str, Any]
    """`{"ok", "status", "latency_ms", "detail"}`; `detail` never shows the key."""
    error: UpstreamError | None
    """The error a request would have met (the adapter's `classify_error`), None when ok."""
    proved: bool
    """False when nothing was sent (no free check for this provider, or no key)."""


async def probe_deployment(
    client: UpstreamClient, provider: Provider, dep: Deployment
) -> dict[str, Any]:
    """Checks `dep`'s key with `provider.probe_request`, without spending tokens.

    Returns:
        `{"ok", "status", "latency_ms", "detail"}`; `detail` never shows the key.

    Raises:
        Nothing: every failure is a result with `ok` false.
    """
    return (await check_deployment(client, provider, dep)).result


async def check_deployment(
    client: UpstreamClient, provider: Provider, dep: Deployment, budget: float = PROBE_TIMEOUT
) -> ProbeOutcome:
    """Checks `dep`'s key like `probe_deployment`, within `budget` seconds, and also returns
    the error a request would have met, for the key pool.

    Raises:
        Nothing: every failure is an outcome with `ok` false.
    """
    if dep.disabled_reason:
        result = {"ok": False, "status": None, "latency_ms": 0.0, "detail": dep.disabled_reason}
        return ProbeOutcome(result, None, False)
    started = time.monotonic()
    try:  # a fresh token proves the credentials too (`vertex_ai/`; others as they are)
        dep = await GoogleTokens().authorize(dep, budget)
    except UpstreamError as exc:
        return _failed(exc.status, started, exc.message[:200], exc)
    request = provider.probe_request(dep)
    if request is None:
        result = {
            "ok": True,
            "status": None,
            "latency_ms": 0.0,
            "detail": f"{dep.provider}: always ok",
        }
        return ProbeOutcome(result, None, False)
    started = time.monotonic()
    try:
        async with asyncio.timeout(budget):
            response = await client.send(request)
    except TimeoutError:
        err: UpstreamError = UpstreamTimeout(
            f"{dep.provider}: key check timed out after {budget:g}s",
            provider=dep.provider,
            key_id=dep.id,
        )
        return _failed(None, started, "timed out", err)
    except TransportError as exc:
        detail = f"connection failed ({type(exc).__name__})"
        return _failed(None, started, detail, connection_error(dep, exc))
    status = response.status_code
    if status < 400:
        return ProbeOutcome(_result(True, status, started, "key accepted"), None, True)
    err = provider.classify_error(dep, status, response.headers, response.content)
    detail = "key rejected" if err.key_rejected else err.message
    return _failed(status, started, detail[:200], err)


def _failed(status: int | None, started: float, detail: str, err: UpstreamError) -> ProbeOutcome:
    return ProbeOutcome(_result(False, status, started, detail), err, True)


def _result(ok: bool, status: int | None, started: float, detail: str) -> dict[str, Any]:
    return {
        "ok": ok,
        "status": status,
        "latency_ms": round((time.monotonic() - started) * 1000, 1),
        "detail": detail,
    }
