"""Where the dashboard's data comes from: the `LiveSource` protocol the panes read through,
`LocalSource` (the proxy runs in this process) and `RemoteSource` (`--attach URL`)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, Protocol
from urllib.parse import quote

import httpx
import orjson

from proxy.sse import SSEDecoder

DRAIN_REQUESTS = 600
"""Request events a frame converts at most (the request table shows the newest 200)."""
_REQUEST_EVENTS = frozenset({"RequestStarted", "RequestFinished"})


class LiveSource(Protocol):
    """Everything a pane or the tester needs from a proxy, local or remote."""

    @property
    def base_url(self) -> str:
        """The proxy's URL, for the tester's `/v1/chat/completions` calls."""

    @property
    def api_key(self) -> str | None:
        """The master key to call the proxy with, if it has one."""

    @property
    def connected(self) -> bool: ...

    @property
    def in_process(self) -> bool:
        """True when the proxy runs in this process, so quitting the dashboard stops it."""

    @property
    def error(self) -> str | None: ...

    async def start(self) -> None:
        """Starts following the proxy (background tasks on the caller's loop)."""

    async def stop(self) -> None:
        """Stops the background tasks and closes connections."""

    async def refresh(self) -> None:
        """Fetches a fresh snapshot now."""

    def snapshot(self) -> dict[str, Any] | None:
        """Returns the latest state document (docs/internals.md), or None before the first."""

    def drain(self) -> list[dict[str, Any]]:
        """Returns the event dicts received since the last call, oldest first."""

    async def action(self, name: str, deployment: str | None = None) -> dict[str, Any]:
        """Runs an admin action (`reset`, `disable`, `enable`, `probe`, `clear_cache`).

        Returns:
            The action's result document.
        Raises:
            RuntimeError: the proxy is not reachable or refused the action.
        """

    async def bodies(self, request_id: str) -> dict[str, Any]:
        """Returns a request's stored bodies (`GET /llmproxy/requests/{id}/bodies`) with
        `stored` (False: none held) and `storing` (whether the proxy stores bodies now).

        Raises:
            RuntimeError: the proxy is not reachable or refused.
        """


def _bodies_document(document: dict[str, Any] | None, storing: bool) -> dict[str, Any]:
    """Returns: what `LiveSource.bodies` answers for a store's document (None: not held)."""
    return {**(document or {}), "stored": document is not None, "storing": storing}


class _Event(Protocol):
    def as_dict(self) -> dict[str, Any]: ...


class _StateDocument(Protocol):
    def snapshot(self) -> Coroutine[Any, Any, dict[str, Any]]: ...


class _Actions(Protocol):
    def run(self, name: str, deployment: str | None) -> Coroutine[Any, Any, dict[str, Any]]: ...


class _Runtime(Protocol):
    """The part of `proxy.runtime.Runtime` the dashboard uses."""

    @property
    def bus(self) -> Any: ...
    @property
    def config(self) -> Any: ...
    @property
    def state(self) -> _StateDocument: ...
    @property
    def actions(self) -> _Actions: ...
    @property
    def bodies(self) -> Any: ...
    @property
    def bodies_on(self) -> bool: ...


class _Server(Protocol):
    """The part of `proxy.server.ProxyServer` the dashboard uses."""

    @property
    def started(self) -> threading.Event: ...
    @property
    def bind_error(self) -> BaseException | None: ...
    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]: ...


def _client_url(listen: str) -> str:
    """A URL a local client can reach for a listen address (`0.0.0.0` → `127.0.0.1`)."""
    return listen.replace("//0.0.0.0:", "//127.0.0.1:").replace("//[::]:", "//[::1]:")


class LocalSource:
    """Reads the in-process proxy: its bus for events, `runtime.state.snapshot()` on its loop."""

    in_process = True

    def __init__(self, server: _Server, runtime: _Runtime, *, interval: float = 1.0) -> None:
        self.server = server
        self.runtime = runtime
        self.interval = interval
        self._snapshot: dict[str, Any] | None = None
        self._sub: Any = None
        self._task: asyncio.Task[None] | None = None
        self.error: str | None = None

    @property
    def base_url(self) -> str:
        listen = ((self._snapshot or {}).get("server") or {}).get("listen")
        if listen:
            return _client_url(str(listen))
        host, port = getattr(self.server, "host", "127.0.0.1"), getattr(self.server, "port", 4000)
        return _client_url(f"http://{host}:{port}")

    @property
    def api_key(self) -> str | None:
        key = getattr(self.runtime.config, "master_key", None)
        return key.reveal() if key is not None else None

    @property
    def connected(self) -> bool:
        return self.server.started.is_set() and self.server.bind_error is None

    async def start(self) -> None:
        self._sub = self.runtime.bus.subscribe(maxlen=10_000)
        self._task = asyncio.create_task(self._poll())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sub is not None:
            self.runtime.bus.unsubscribe(self._sub)
            self._sub = None

    async def _poll(self) -> None:
        while True:
            if self.connected:
                try:
                    await self.refresh()
                except Exception as exc:  # shown in the header, retried
                    self.error = f"snapshot failed: {exc}"
            await asyncio.sleep(self.interval)

    async def _on_proxy(self, make: Any) -> Any:
        if not self.connected:
            raise RuntimeError("the proxy is not running")
        coro = make()
        try:
            future = self.server.submit(coro)
        except BaseException:
            coro.close()  # never scheduled: close it, or it is reported as never awaited
            raise
        return await asyncio.wrap_future(future)

    async def refresh(self) -> None:
        self._snapshot = await self._on_proxy(self.runtime.state.snapshot)
        self.error = None

    def snapshot(self) -> dict[str, Any] | None:
        return self._snapshot

    def drain(self) -> list[dict[str, Any]]:
        if self._sub is None:
            return []
        events: list[_Event] = self._sub.drain()
        if len(events) > DRAIN_REQUESTS:
            # Request rows older than the newest DRAIN_REQUESTS would scroll out of the table in
            # the same frame: don't convert them (at thousands of requests a second that work
            # competed with the proxy for the GIL). Health, cache and log events always pass.
            head, tail = events[:-DRAIN_REQUESTS], events[-DRAIN_REQUESTS:]
            events = [e for e in head if type(e).__name__ not in _REQUEST_EVENTS] + tail
        return [event.as_dict() for event in events]

    async def action(self, name: str, deployment: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self._on_proxy(
            lambda: self.runtime.actions.run(name, deployment)
        )
        return result

    async def bodies(self, request_id: str) -> dict[str, Any]:
        runtime = self.runtime

        async def read() -> dict[str, Any]:  # on the proxy's loop, which owns the store
            return _bodies_document(runtime.bodies.get(request_id), runtime.bodies_on)

        result: dict[str, Any] = await self._on_proxy(read)
        return result


class RemoteSource:
    """Follows a headless proxy over HTTP: `/llmproxy/events` (SSE) for events, `/llmproxy/state`
    every `interval` seconds, `/llmproxy/actions`; reconnects with exponential backoff."""

    in_process = False

    def __init__(
        self,
        url: str,
        key: str | None,
        *,
        interval: float = 2.0,
        backoff: tuple[float, float] = (0.5, 10.0),
    ) -> None:
        self.base_url = url.rstrip("/")
        self.api_key = key
        self.interval = interval
        self.backoff = backoff
        self.connected = False
        self.error: str | None = None
        self.reconnects = 0
        self._snapshot: dict[str, Any] | None = None
        self._events: list[dict[str, Any]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("RemoteSource.start() was not called")
        return self._client

    async def start(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._client = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=httpx.Timeout(10.0, read=30.0)
        )
        self._tasks = [asyncio.create_task(self._follow()), asyncio.create_task(self._poll())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()

    def snapshot(self) -> dict[str, Any] | None:
        return self._snapshot

    def drain(self) -> list[dict[str, Any]]:
        events, self._events = self._events, []
        return events

    async def refresh(self) -> None:
        response = await self.client.get("/llmproxy/state")
        response.raise_for_status()
        self._snapshot = orjson.loads(response.content)

    async def action(self, name: str, deployment: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"action": name}
        if deployment is not None:
            body["deployment"] = deployment
        try:
            response = await self.client.post("/llmproxy/actions", json=body)
        except httpx.HTTPError as exc:
            raise RuntimeError(f"{name}: {exc}") from exc
        if response.status_code >= 400:
            raise RuntimeError(f"{name}: HTTP {response.status_code} {response.text[:200]}")
        result: dict[str, Any] = orjson.loads(response.content)
        return result

    async def bodies(self, request_id: str) -> dict[str, Any]:
        try:
            response = await self.client.get(
                f"/llmproxy/requests/{quote(request_id, safe='')}/bodies"
            )
            if response.status_code == 404:
                status = await self.client.get("/llmproxy/bodies")
                status.raise_for_status()
                return _bodies_document(None, bool(orjson.loads(status.content).get("storing")))
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise RuntimeError(f"bodies: {exc}") from exc
        document = orjson.loads(response.content)
        return _bodies_document(document, bool(document.get("storing")))

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self.connected:
                with contextlib.suppress(httpx.HTTPError, orjson.JSONDecodeError):
                    await self.refresh()

    async def _follow(self) -> None:
        delay = self.backoff[0]
        while True:
            try:
                await self._read_stream()
                self.error = "the proxy closed the event stream"
            except httpx.HTTPStatusError as exc:
                self.error = f"HTTP {exc.response.status_code} from {self.base_url}"
            except (httpx.HTTPError, OSError, ValueError) as exc:
                self.error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if self.connected:
                delay = self.backoff[0]
            self.connected = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff[1])
            self.reconnects += 1

    async def _read_stream(self) -> None:
        async with self.client.stream("GET", "/llmproxy/events") as response:
            response.raise_for_status()
            decoder = SSEDecoder()
            async for chunk in response.aiter_bytes():
                for sse in decoder.feed(chunk):
                    self._handle(sse.event, sse.data)

    def _handle(self, name: str | None, data: str) -> None:
        if name == "snapshot":
            self._snapshot = orjson.loads(data)
            self.connected = True
            self.error = None
        elif name == "events":
            self._events.extend(orjson.loads(data))
        if len(self._events) > 10_000:  # nobody is draining: keep the newest
            del self._events[:-10_000]
