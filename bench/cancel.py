"""How fast does a client going away stop the upstream call? Prints p50 and max, over N tries,
of the time from the client closing its socket to the fake upstream seeing its connection closed.

Starts the fake upstream and one `llmproxy-tui --no-tui`, then for each try sends a request on
a raw socket, in turn: non-streamed to an upstream that never answers, streamed to one that
never sends a first chunk, and streamed mid-way (two text pieces arrived, then silence); each
on the three front doors in turn. Run: `python bench/cancel.py [--tries 100]`.
"""

from __future__ import annotations

import argparse
import itertools
import socket
import statistics
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fake_proxy import MASTER, headless_proxy

from tests.fakes.upstream import FakeUpstream, hang, stream_stall

PATHS = {"chat": "/v1/chat/completions", "messages": "/v1/messages", "responses": "/v1/responses"}
MODES = ("whole", "stream before its first chunk", "stream mid-way")


def request(door: str, stream: bool) -> bytes:
    if door == "responses":
        doc: dict[str, object] = {"model": "g", "input": "hello there", "max_output_tokens": 9}
    else:
        doc = {"model": "g", "max_tokens": 9, "messages": [{"role": "user", "content": "hello"}]}
    raw = orjson.dumps({**doc, "stream": stream})
    head = (
        f"POST {PATHS[door]} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"authorization: Bearer {MASTER}\r\ncontent-length: {len(raw)}\r\n\r\n"
    )
    return head.encode() + raw


def one_try(port: int, fake: FakeUpstream, door: str, mode: str) -> float:
    """Returns: seconds from the client's close to the upstream connection's close."""
    fake.reset()
    fake.set_default(stream_stall(after=2) if mode == "stream mid-way" else hang())
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(request(door, mode != "whole"))
    fake.wait_requests(1)
    if mode == "stream mid-way":
        seen = b""
        while b"Hello!" not in seen:
            data = sock.recv(65536)
            if not data:
                raise RuntimeError(f"the proxy closed the stream: {seen[-200:]!r}")
            seen += data
    gone = time.monotonic()
    sock.close()
    return fake.wait_hangups(1, timeout=30)[0] - gone


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--tries", type=int, default=100)
    args = p.parse_args()
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    with FakeUpstream() as fake, headless_proxy(fake, "llmproxy-cancel-") as (_proc, port):
        cases = itertools.cycle(itertools.product(MODES, PATHS))
        for _, (mode, door) in zip(range(args.tries), cases, strict=False):
            times[mode].append(one_try(port, fake, door, mode))
    every = [t for ts in times.values() for t in ts]
    for mode, ts in times.items():
        print(f"{mode:30s} n={len(ts):3d}  p50 {statistics.median(ts) * 1000:7.2f} ms  "
              f"max {max(ts) * 1000:7.2f} ms")  # fmt: skip
    print(f"{'all':30s} n={len(every):3d}  p50 {statistics.median(every) * 1000:7.2f} ms  "
          f"max {max(every) * 1000:7.2f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
