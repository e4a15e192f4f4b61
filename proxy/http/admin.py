"""Admin handlers (master key): the state snapshot, the live event stream, actions and metrics.

`/llmproxy/events` sends the snapshot first, then batches of bus events at most 4 times a
second, and a heartbeat when idle. Its subscription is bounded, so a client that stops
reading loses events (counted) and never slows a request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import Request
from starlette.responses import Response, StreamingResponse

from proxy.errors import BadRequest
from proxy.runtime import Runtime

BATCH_INTERVAL = 0.25
HEARTBEAT = 5.0
MAX_BATCH = 500


class AdminHandlers:
    """The admin handlers, served by FastAPI; the route table gives them the master key."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def state(self, _request: Request) -> Response:
        """GET /llmproxy/state: the state document."""
        document = await self.runtime.state.snapshot()
        return Response(orjson.dumps(document), media_type="application/json")

    async def events(self, request: Request) -> Response:
        """GET /llmproxy/events: the snapshot, then event batches and heartbeats (SSE)."""
        return StreamingResponse(
            _event_stream(self.runtime, request),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    async def actions(self, request: Request) -> Response:
        """POST /llmproxy/actions: `{"action": ..., "deployment": ...}`.

        Raises:
            BadRequest: the body is not such an object.
        """
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise BadRequest('The body must be JSON: {"action": ..., "deployment": ...}') from None
        if not isinstance(body, dict) or not isinstance(body.get("action"), str):
            raise BadRequest("'action' is required.", param="action")
        deployment = body.get("deployment")
        if deployment is not None and not isinstance(deployment, str):
            raise BadRequest("'deployment' must be a deployment id.", param="deployment")
        result = await self.runtime.actions.run(body["action"], deployment)
        return Response(orjson.dumps(result), media_type="application/json")

    async def metrics(self, _request: Request) -> Response:
        """GET /metrics: Prometheus text."""
        runtime = self.runtime
        runtime.metrics.set_deployments(runtime.pool.snapshot())
        runtime.metrics.set_dropped_events(runtime.bus.dropped)
        body, content_type = runtime.metrics.render()
        return Response(body, media_type=content_type)


def _sse(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def _event_stream(runtime: Runtime, request: Request) -> AsyncIterator[bytes]:
    sub = runtime.bus.subscribe(maxlen=5_000)
    try:
        yield _sse("snapshot", await runtime.state.snapshot())
        last_sent = time.monotonic()
        while not runtime.draining and not sub.closed:
            await asyncio.sleep(BATCH_INTERVAL)
            batch = sub.drain(MAX_BATCH)
            if batch:
                yield _sse("events", [ev.as_dict() for ev in batch])
                last_sent = time.monotonic()
            elif time.monotonic() - last_sent >= HEARTBEAT:
                yield _sse("heartbeat", {"time": time.time(), "dropped": sub.dropped})
                last_sent = time.monotonic()
            if await request.is_disconnected():
                break
    finally:
        runtime.bus.unsubscribe(sub)
