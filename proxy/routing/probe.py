"""Key probe: a cheap call (list models) that checks a deployment's key without spending tokens."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from proxy.config.types import Deployment
from proxy.providers.base import Provider
from proxy.routing.transport import UpstreamClient
from proxy.schema import UpstreamRequest

PROBE_TIMEOUT = 10.0


def probe_request(dep: Deployment) -> UpstreamRequest | None:
    """Returns the provider's list-models request for `dep`, or None for `mock`."""
    headers: dict[str, str] = dict(dep.extra_headers)
    if dep.wire == "mock":
        return None
    if dep.wire == "anthropic":
        base = dep.api_base if dep.api_base.endswith("/v1") else dep.api_base + "/v1"
        headers["anthropic-version"] = "2023-06-01"
        if dep.key is not None:
            headers["x-api-key"] = dep.key.reveal()
        return UpstreamRequest("GET", base + "/models", headers)
    if dep.key is not None:
        headers["authorization"] = "Bearer " + dep.key.reveal()
    return UpstreamRequest("GET", dep.api_base + "/models", headers)


async def probe_deployment(
    client: UpstreamClient, provider: Provider | None, dep: Deployment
) -> dict[str, Any]:
    """Returns `{"ok", "status", "latency_ms", "detail"}`; never raises, never shows the key."""
    if dep.disabled_reason:
        return {"ok": False, "status": None, "latency_ms": 0.0, "detail": dep.disabled_reason}
    request = probe_request(dep)
    if request is None:
        return {"ok": True, "status": None, "latency_ms": 0.0, "detail": "mock: always ok"}
    started = time.monotonic()
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            response = await client.send(request)
    except TimeoutError:
        return _result(False, None, started, "timed out")
    except httpx.TransportError as exc:
        return _result(False, None, started, f"connection failed ({type(exc).__name__})")
    status = response.status_code
    if status < 400:
        return _result(True, status, started, "key accepted")
    if provider is not None:
        err = provider.classify_error(dep, status, response.headers, response.content)
        detail = "key rejected" if err.key_rejected else err.message
    else:
        detail = f"HTTP {status}"
    return _result(False, status, started, detail[:200])


def _result(ok: bool, status: int | None, started: float, detail: str) -> dict[str, Any]:
    return {
        "ok": ok,
        "status": status,
        "latency_ms": round((time.monotonic() - started) * 1000, 1),
        "detail": detail,
    }
