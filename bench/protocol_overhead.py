"""What do the connection bounds cost per request? uvicorn's httptools protocol against the
proxy's `BoundedProtocol`, driven directly (no sockets) with a minimal ASGI app.

Each round feeds the same keep-alive request N times to one connection of each protocol,
alternating, and reports the median CPU microseconds per request over the rounds.
Run: `python bench/protocol_overhead.py [--requests 20000] [--rounds 7]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from proxy.errors import ProxyError
from proxy.http.connections import ClientLimits, bounded_protocol

BODY = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:4000\r\n"
    b"Content-Type: application/json\r\nAccept: application/json\r\n"
    b"User-Agent: OpenAI/Python 1.55.0\r\nAuthorization: Bearer sk-bench\r\n"
    b"X-Stainless-Lang: python\r\nX-Stainless-Package-Version: 1.55.0\r\n"
    b"X-Stainless-Os: Linux\r\nX-Stainless-Arch: x64\r\nX-Stainless-Runtime: CPython\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
)
"""An OpenAI SDK's request head, whole in one read as most are."""


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def write(self, data: Any) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 4000) if name in ("sockname", "peername") else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True


async def app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


def render(method: str | None, path: str | None, err: ProxyError) -> tuple[int, bytes, str]:
    return err.status, b"{}", "id"


async def cpu_per_request(cls: type[HttpToolsProtocol], count: int) -> float:
    config = Config(app, lifespan="off", log_config=None, access_log=False)
    config.load()
    state = ServerState()
    protocol = cls(config=config, server_state=state, app_state={})
    protocol.connection_made(Transport())
    started = time.process_time()
    for _ in range(count):
        protocol.data_received(REQUEST)
        await asyncio.gather(*state.tasks)  # the app answers
    spent = time.process_time() - started
    protocol.connection_lost(None)
    return spent / count * 1e6


async def main(requests: int, rounds: int) -> None:
    bounded = bounded_protocol(ClientLimits(), render)
    plain: list[float] = []
    ours: list[float] = []
    for _ in range(rounds):
        plain.append(await cpu_per_request(HttpToolsProtocol, requests))
        ours.append(await cpu_per_request(bounded, requests))
    base, mine = statistics.median(plain), statistics.median(ours)
    print(f"uvicorn HttpToolsProtocol: {base:6.2f} us CPU per request (median of {rounds})")
    print(f"BoundedProtocol:           {mine:6.2f} us CPU per request")
    print(f"difference:                {mine - base:+6.2f} us")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
