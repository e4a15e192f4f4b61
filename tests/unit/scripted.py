"""A scripted upstream behind the router's `UpstreamClient` seam: no sockets, no waiting.

Each deployment has its own host (`http://<id>.test/v1`); a test queues replies per host, and
a host with nothing queued answers with the recorded OpenAI completion (or stream). Bodies are
the providers' real wire bytes, from tests/fixtures/<vendor>/.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from multidict import CIMultiDict, CIMultiDictProxy

from proxy.routing.transport import ReadError
from proxy.schema import UpstreamRequest
from tests.fakes.recorded import FIXTURES


def fixture_bytes(vendor: str, name: str) -> bytes:
    return (FIXTURES / vendor / name).read_bytes()


def sse_from_jsonl(vendor: str, name: str) -> list[bytes]:
    """Returns one SSE event per recorded line, encoded as the vendor sends it."""
    events = []
    for line in (FIXTURES / vendor / name).read_text().splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        data = item["data"]
        text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        head = f"event: {item['event']}\n" if item["event"] else ""
        events.append(f"{head}data: {text}\n\n".encode())
    return events


@dataclass
class Reply:
    """One scripted upstream answer."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    events: list[bytes] | None = None
    """For a stream: the SSE pieces, one network read each."""
    cut: Exception | None = None
    """Raised after the events (a connection dropped mid-stream)."""
    takes: float = 0.0
    """Seconds the upstream takes to answer, on the test's clock (advanced, not waited)."""


def ok(vendor: str = "openai") -> Reply:
    name = "chat_completion.json" if vendor == "openai" else "message.json"
    return Reply(200, fixture_bytes(vendor, name), {"content-type": "application/json"})


def ok_stream(vendor: str = "openai", *, cut_after: int | None = None) -> Reply:
    events = sse_from_jsonl(vendor, "chat_stream.jsonl" if vendor == "openai" else "stream.jsonl")
    if cut_after is None:
        return Reply(200, events=events, headers={"content-type": "text/event-stream"})
    return Reply(200, events=events[:cut_after], cut=ReadError("ClientPayloadError"))


def error(status: int, fixture: str | None = None, vendor: str = "openai", **headers: str) -> Reply:
    """An error answer; `fixture` names a recorded error body, else a generic one."""
    if fixture is not None:
        body = fixture_bytes(vendor, fixture)
    else:
        body = json.dumps(
            {"error": {"message": f"upstream failed ({status})", "type": "server_error",
                       "param": None, "code": None}}
        ).encode()  # fmt: skip
    names = {k.replace("_", "-"): v for k, v in headers.items()}
    return Reply(status, body, {"content-type": "application/json", **names})


class Hang:
    """A reply that never comes (the router's timeout must end the attempt)."""


class FakeResponse:
    """Duck-types `proxy.routing.transport.UpstreamResponse`."""

    def __init__(self, reply: Reply, upstream: ScriptedUpstream) -> None:
        self.status_code = reply.status
        self.headers = CIMultiDictProxy(CIMultiDict(reply.headers))
        self.content = reply.body
        self._reply = reply
        self._upstream = upstream

    async def aread(self) -> bytes:
        return self.content

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        for piece in self._reply.events or [self._reply.body]:
            yield piece
        if self._reply.cut is not None:
            raise self._reply.cut

    async def aclose(self) -> None:
        self._upstream.closed += 1


@dataclass
class Call:
    host: str
    url: str
    body: dict[str, Any]
    headers: dict[str, str]
    stream: bool


class ScriptedUpstream:
    """Satisfies `UpstreamClient`: answers each request from its host's queued replies."""

    def __init__(self, clock: Any = None) -> None:
        self.clock = clock
        self.scripts: dict[str, deque[Reply | Exception | Hang]] = defaultdict(deque)
        self.always: dict[str, Reply | Exception] = {}
        self.calls: list[Call] = []
        self.opened = 0
        """Stream responses handed out; each must be closed (`closed`) once it is done."""
        self.closed = 0

    def script(self, host: str, *replies: Reply | Exception | Hang) -> None:
        """Queues replies for `host` (a deployment id); they are used in order, once each."""
        self.scripts[host].extend(replies)

    def answer_always(self, host: str, reply: Reply | Exception) -> None:
        """Answers `host` with `reply` whenever its queue is empty."""
        self.always[host] = reply

    def hosts(self) -> list[str]:
        return [c.host for c in self.calls]

    async def send(self, request: UpstreamRequest, *, stream: bool = False) -> FakeResponse:
        host = (urlsplit(request.url).hostname or "").removesuffix(".test")
        body = json.loads(request.content) if request.content else {}
        self.calls.append(Call(host, request.url, body, dict(request.headers), stream))
        queue = self.scripts[host]
        step = queue.popleft() if queue else self.always.get(host)
        if step is None:
            vendor = "anthropic" if "/messages" in request.url else "openai"
            step = ok_stream(vendor) if stream else ok(vendor)
        if isinstance(step, Hang):
            await asyncio.Event().wait()
        if isinstance(step, Exception):
            raise type(step)(*step.args)  # a fresh one each time, as a real transport raises
        assert isinstance(step, Reply)
        if step.takes:
            self.clock.advance(step.takes)
        if stream:
            self.opened += 1
        return FakeResponse(step, self)

    async def aclose(self) -> None:
        """Nothing to close."""
