"""FakeUpstream: a scripted loopback server speaking OpenAI's and Anthropic's wire formats.

It runs on its own event loop in a background thread, on 127.0.0.1 and a free port, so sync and
async tests alike can point real clients at it. Steps (see `tests.fakes.steps`) script answers.
OpenAI: chat completions, completions, embeddings, models and the Responses API
(`/v1/responses`, see `responses_wire`). Anthropic: messages, `messages/count_tokens`, models.
Any HEAD (Claude Code probes `HEAD /api/hello`) gets an empty 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from tests.fakes import anthropic_checks, anthropic_wire, openai_wire, responses_wire, turns
from tests.fakes.exchange import Exchange
from tests.fakes.http11 import (
    MAX_HEAD,
    Answer,
    MalformedRequestError,
    Request,
    read_request,
    write_answer,
)
from tests.fakes.steps import (
    DEFAULT_CONTENT,
    ContextTooLong,
    Drop,
    Error,
    Hang,
    Overloaded,
    RateLimit,
    Raw,
    Reply,
    Step,
    StreamCut,
    StreamErrorFirst,
    StreamStall,
    ToolLoop,
    context_too_long,
    drop,
    error,
    hang,
    overloaded,
    rate_limit,
    raw,
    reply,
    stream_cut,
    stream_error_first,
    stream_stall,
    tool_loop,
)

__all__ = [
    "DEFAULT_CONTENT", "ContextTooLong", "Drop", "Error", "FakeUpstream", "Hang", "Overloaded",
    "RateLimit", "Raw", "Reply", "Seen", "Step", "StreamCut", "StreamErrorFirst", "StreamStall",
    "ToolLoop", "context_too_long", "drop", "error", "hang", "overloaded", "rate_limit", "raw",
    "reply", "stream_cut", "stream_error_first", "stream_stall", "tool_loop",
]  # fmt: skip

RESPONSES = "/v1/responses"
COUNT_TOKENS = "/v1/messages/count_tokens"
OPENAI_POSTS = ("/v1/chat/completions", "/v1/embeddings", "/v1/completions", RESPONSES)
ANTHROPIC_POSTS = ("/v1/messages", COUNT_TOKENS)


@dataclass(frozen=True)
class Seen:
    """One request the fake received. `time` is time.monotonic() when it was read."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    key: str | None
    time: float
    query: str = ""


def _key_of(headers: dict[str, str]) -> str | None:
    if "x-api-key" in headers:
        return headers["x-api-key"]
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _is_anthropic(req: Request) -> bool:
    if req.path.startswith("/v1/messages"):
        return True
    return req.path == "/v1/models" and (
        "x-api-key" in req.headers or "anthropic-version" in req.headers
    )


class FakeUpstream:
    """A scripted fake of the OpenAI and Anthropic APIs on 127.0.0.1.

    Requests that pass auth and validation each consume one step: first from the queue of
    their API key, else from the any-key queue, else the default (reply()). GET /v1/models,
    count_tokens, HEAD and rejected requests (401, 404, validation 400s) consume no step.
    """

    def __init__(self) -> None:
        self.rejected_keys: set[str] = set()
        """Keys answered with 401 in the vendor's shape, on every path."""
        self.responses_api = True
        """False: answer 404 for /v1/responses, like a server that only speaks Chat."""
        self._stored: set[str] = set()
        self.port = 0
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._queues: dict[str | None, deque[Step]] = {}
        self._default: Step = Reply()
        self._seen: list[Seen] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._failure: BaseException | None = None
        self._hangups: list[float] = []

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeUpstream:
        """Start serving in a background thread.

        Returns: self, once the port is bound.
        Raises: RuntimeError when the server could not start.
        """
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="fake-upstream")
        self._thread.daemon = True
        self._thread.start()
        if not ready.wait(10) or self._failure is not None:
            raise RuntimeError(f"fake upstream did not start: {self._failure!r}")
        return self

    def stop(self) -> None:
        """Close the server and every open connection (ending any hang); wait for the thread."""
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if loop is None or stopping is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(stopping.set)
        thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Returns: the base URL, `http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base(self) -> str:
        """Returns: the OpenAI base URL (with `/v1`)."""
        return self.url + "/v1"

    @property
    def anthropic_base(self) -> str:
        """Returns: the Anthropic base URL (without `/v1`; /v1/messages is served)."""
        return self.url

    # -- scripting -------------------------------------------------------------------------

    def script(self, *steps: Step, key: str | None = None) -> None:
        """Queue steps for requests with API key `key` (None: for any key)."""
        with self._lock:
            self._queues.setdefault(key, deque()).extend(steps)

    def set_default(self, step: Step) -> None:
        """Use `step` whenever the queues are empty (initially reply())."""
        with self._lock:
            self._default = step

    def reset(self) -> None:
        """Clear the queues, the default, the recorded requests and the rejected keys."""
        with self._lock:
            self._queues.clear()
            self._default = Reply()
            self._seen.clear()
            self._hangups.clear()
            self._stored.clear()
            self.rejected_keys.clear()
            self.responses_api = True

    @property
    def requests(self) -> list[Seen]:
        """Returns: a copy of every request received, in order."""
        with self._lock:
            return list(self._seen)

    def calls(self, key: str | None = None, path: str | None = None) -> list[Seen]:
        """Returns: the requests with API key `key` and path `path` (None matches any)."""
        return [
            s
            for s in self.requests
            if (key is None or s.key == key) and (path is None or s.path == path)
        ]

    def wait_requests(self, count: int = 1, timeout: float = 5.0) -> list[Seen]:
        """Block until at least `count` requests were received (from an async test, call it
        through asyncio.to_thread).

        Returns: every request received so far.
        Raises: TimeoutError when fewer than `count` arrived within `timeout` seconds.
        """
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._seen) >= count, timeout):
                raise TimeoutError(f"{len(self._seen)} of {count} requests arrived")
            return list(self._seen)

    @property
    def hangups(self) -> list[float]:
        """Returns: time.monotonic() of each moment a client closed a connection the fake was
        holding open (a hang or a stalled stream), in order."""
        with self._lock:
            return list(self._hangups)

    def wait_hangups(self, count: int = 1, timeout: float = 5.0) -> list[float]:
        """Block until clients closed at least `count` held connections (see `hangups`).

        Raises: TimeoutError when fewer did within `timeout` seconds.
        """
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self._hangups) >= count, timeout):
                raise TimeoutError(f"{len(self._hangups)} of {count} held connections closed")
            return list(self._hangups)

    async def _hold(self, reader: asyncio.StreamReader, seconds: float) -> None:
        """Waits for the client to close (noting when), at most `seconds`."""
        with contextlib.suppress(TimeoutError, ConnectionError):
            while await asyncio.wait_for(reader.read(65536), seconds):
                pass  # anything the client still sends is ignored
            with self._arrived:
                self._hangups.append(time.monotonic())
                self._arrived.notify_all()

    def _next_step(self, key: str | None) -> Step:
        with self._lock:
            for queue_key in (key, None) if key is not None else (None,):
                queue = self._queues.get(queue_key)
                if queue:
                    return queue.popleft()
            return self._default

    def _record(self, req: Request) -> tuple[Seen, int]:
        body = req.json()
        seen = Seen(
            req.method, req.path, req.headers, body, req.raw, _key_of(req.headers),
            time.monotonic(), req.query,
        )  # fmt: skip
        with self._lock:
            self._seen.append(seen)
            self._arrived.notify_all()
            return seen, len(self._seen)

    # -- serving ---------------------------------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(ready))
        except BaseException as exc:  # reported to start() through _failure
            self._failure = exc
            ready.set()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self, ready: threading.Event) -> None:
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._connection, "127.0.0.1", 0, limit=MAX_HEAD)
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        async with server:
            await self._stopping.wait()
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                try:
                    req = await read_request(reader)
                except (MalformedRequestError, asyncio.LimitOverrunError, ValueError):
                    writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    break
                if req is None or not await self._respond(req, reader, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        except asyncio.CancelledError:
            pass  # stop(): end quietly (3.11's start_server callback chokes on a cancelled task)
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _respond(
        self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Returns: whether the connection stays open for another request."""
        seen, seq = self._record(req)
        anthropic = _is_anthropic(req)
        body = seen.body if isinstance(seen.body, dict) else {}
        exchange = Exchange(req.path, body, seen.key, seq)
        answer = self._precheck(req, seen, exchange, anthropic)
        chunk_delay = 0.0
        if answer is None:
            step = self._next_step(seen.key)
            if isinstance(step, Drop):
                return False
            if isinstance(step, Hang):
                await self._hold(reader, step.seconds)  # until the client gives up
                return False
            if isinstance(step, Raw):
                await _write_raw(writer, step)
                return False
            if isinstance(step, StreamStall):
                cut = _render(StreamCut(step.after), exchange, anthropic)
                await write_answer(writer, cut, keep_alive=False)
                await self._hold(reader, step.seconds)
                return False
            if isinstance(step, ToolLoop):
                step = turns.decide(step, exchange)
            answer = _render(step, exchange, anthropic)
            if isinstance(step, Reply) and req.path == RESPONSES and body.get("store") is not False:
                with self._lock:
                    self._stored.add(f"resp_fake{seq:08d}")
            if isinstance(step, Reply):
                chunk_delay = step.chunk_delay
                if step.delay:
                    await asyncio.sleep(step.delay)
        return await write_answer(
            writer, answer, keep_alive=req.keep_alive, chunk_delay=chunk_delay
        )

    def _precheck(
        self, req: Request, seen: Seen, exchange: Exchange, anthropic: bool
    ) -> Answer | None:
        """Returns: the answer for a request that must not consume a step, else None."""
        if req.method == "HEAD":
            return Answer(200, {"content-type": "text/plain"})
        routes = ANTHROPIC_POSTS if anthropic else OPENAI_POSTS
        is_models = req.method == "GET" and req.path == "/v1/models"
        missing = req.path == RESPONSES and not self.responses_api
        if missing or (not is_models and (req.method != "POST" or req.path not in routes)):
            return _not_found(req, exchange, anthropic)
        if anthropic and "x-api-key" not in req.headers:
            return anthropic_wire.error_answer(exchange, 401, "x-api-key header is required")
        if seen.key is None:
            msg = (
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
            return openai_wire.error_answer(exchange, 401, msg)
        if seen.key in self.rejected_keys:
            return _unauthorized(exchange, anthropic)
        if is_models:
            models = anthropic_wire.models_answer if anthropic else openai_wire.models_answer
            return models(exchange)
        invalid = self._invalid(req, seen, exchange, anthropic)
        if invalid is None and req.path == COUNT_TOKENS:
            return anthropic_wire.count_tokens_answer(exchange)
        return invalid

    def _invalid(
        self, req: Request, seen: Seen, exchange: Exchange, anthropic: bool
    ) -> Answer | None:
        if req.path == RESPONSES and isinstance(seen.body, dict):
            with self._lock:
                stored = set(self._stored)
            return responses_wire.validate(exchange, stored)
        return _invalid(req, seen, exchange, anthropic)


async def _write_raw(writer: asyncio.StreamWriter, step: Raw) -> None:
    """Writes a Raw step's bytes as they are made, so a huge answer costs no memory here."""
    size = sum(map(len, step.head)) + len(step.piece) * step.repeat
    if step.sse:
        kind = "text/event-stream"
        framing = "transfer-encoding: chunked"
    else:
        kind, framing = "application/json", f"content-length: {size}"
    head = f"HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\n{framing}\r\nconnection: close\r\n\r\n"
    writer.write(head.encode())
    for index, data in enumerate(_pieces(step)):
        if index == len(step.head) and step.pause:
            await asyncio.sleep(step.pause)
        if data:
            writer.write(b"%x\r\n%s\r\n" % (len(data), data) if step.sse else data)
            await writer.drain()
    if step.sse:
        writer.write(b"0\r\n\r\n")
    await writer.drain()


def _pieces(step: Raw) -> Iterator[bytes]:
    yield from step.head
    for _ in range(step.repeat):
        yield step.piece


def _render(step: Step, exchange: Exchange, anthropic: bool) -> Answer:
    if anthropic:
        return anthropic_wire.render(step, exchange)
    if exchange.path == RESPONSES:
        return responses_wire.render(step, exchange)
    return openai_wire.render(step, exchange)


def _not_found(req: Request, exchange: Exchange, anthropic: bool) -> Answer:
    if anthropic:
        return anthropic_wire.error_answer(exchange, 404, "Not Found", type="not_found_error")
    msg = f"Invalid URL ({req.method} {req.path})"
    return openai_wire.error_answer(exchange, 404, msg)


def _unauthorized(exchange: Exchange, anthropic: bool) -> Answer:
    if anthropic:
        return anthropic_wire.error_answer(exchange, 401, "invalid x-api-key")
    msg = "Incorrect API key provided. You can find your API key at the provider's dashboard."
    return openai_wire.error_answer(exchange, 401, msg, code="invalid_api_key")


def _invalid(req: Request, seen: Seen, exchange: Exchange, anthropic: bool) -> Answer | None:
    if not anthropic:
        if not isinstance(seen.body, dict):
            msg = (
                "We could not parse the JSON body of your request. The API expects a JSON payload."
            )
            return openai_wire.error_answer(exchange, 400, msg)
        return openai_wire.validate(exchange)
    if "anthropic-version" not in req.headers:
        return anthropic_wire.error_answer(exchange, 400, "anthropic-version: header is required")
    if seen.body is None:
        msg = "There was an error parsing the body of your request: expected a JSON object"
        return anthropic_wire.error_answer(exchange, 400, msg)
    message = anthropic_checks.problem(seen.body, count_tokens=req.path == COUNT_TOKENS)
    return None if message is None else anthropic_wire.error_answer(exchange, 400, message)
