"""Key probe: send the provider's cheapest key check (list models) and say what its answer means."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from proxy.config.types import Deployment
from proxy.errors import UpstreamError
from proxy.providers.base import Provider
from proxy.routing.google_auth import GoogleTokens
from proxy.routing.transport import TransportError, UpstreamClient

PROBE_TIMEOUT = 10.0


async def probe_deployment(
    client: UpstreamClient, provider: Provider, dep: Deployment
) -> dict[str, Any]:
    """Checks `dep`'s key with `provider.probe_request`, without spending tokens.

    Returns:
        `{"ok", "status", "latency_ms", "detail"}`; `detail` never shows the key.

    Raises:
        Nothing: every failure is a result with `ok` false.
    """
    if dep.disabled_reason:
        return {"ok": False, "status": None, "latency_ms": 0.0, "detail": dep.disabled_reason}
    try:  # a fresh token proves the credentials too (`vertex_ai/`; others as they are)
        dep = await GoogleTokens().authorize(dep, PROBE_TIMEOUT)
    except UpstreamError as exc:
        return _result(False, exc.status, time.monotonic(), exc.message[:200])
    request = provider.probe_request(dep)
    if request is None:
        return {
            "ok": True,
            "status": None,
            "latency_ms": 0.0,
            "detail": f"{dep.provider}: always ok",
        }
    started = time.monotonic()
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            response = await client.send(request)
    except TimeoutError:
        return _result(False, None, started, "timed out")
    except TransportError as exc:
        return _result(False, None, started, f"connection failed ({type(exc).__name__})")
    status = response.status_code
    if status < 400:
        return _result(True, status, started, "key accepted")
    err = provider.classify_error(dep, status, response.headers, response.content)
    detail = "key rejected" if err.key_rejected else err.message
    return _result(False, status, started, detail[:200])


def _result(ok: bool, status: int | None, started: float, detail: str) -> dict[str, Any]:
    return {
        "ok": ok,
        "status": status,
        "latency_ms": round((time.monotonic() - started) * 1000, 1),
        "detail": detail,
    }
