"""Does a stalled /llmproxy/events subscriber slow the proxy? A noise-resistant A/B measurement.

Starts the fake upstream and one `llmproxy-tui --no-tui`, then alternates rounds of load without
and with a subscriber that connects to /llmproxy/events and never reads. It reports, per mode,
the median over rounds of the proxy process's CPU time per request (from /proc, so other load on
the machine matters little) and of the throughput. Run: `python bench/stalled_subscriber.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fake_proxy import MASTER, headless_proxy

from tests.fakes.upstream import FakeUpstream

BODY = {"model": "g", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 5}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stalled(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    head = f"GET /llmproxy/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {MASTER}\r\n\r\n"
    sock.sendall(head.encode())
    return sock


async def load(url: str, requests: int, workers: int) -> float:
    """Returns: seconds taken to answer `requests` requests with `workers` in parallel."""
    headers = {"authorization": f"Bearer {MASTER}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        left = iter(range(requests))

        async def worker() -> None:
            for _ in left:
                r = await client.post("/v1/chat/completions", json=BODY)
                r.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(workers)))
        return time.perf_counter() - started


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=3, help="rounds per mode (alternating)")
    p.add_argument("--requests", type=int, default=2000, help="requests per round")
    p.add_argument("--workers", type=int, default=16, help="concurrent requests")
    args = p.parse_args()
    with FakeUpstream() as fake, headless_proxy(fake, "llmproxy-stalled-") as (proc, port):
        url = f"http://127.0.0.1:{port}"
        asyncio.run(load(url, 300, args.workers))  # warm-up
        results: dict[str, list[tuple[float, float]]] = {"base": [], "stalled": []}
        for _ in range(args.rounds):
            for mode in ("base", "stalled"):
                sub = stalled(port) if mode == "stalled" else None
                time.sleep(0.5)
                cpu0 = cpu_seconds(proc.pid)
                wall = asyncio.run(load(url, args.requests, args.workers))
                cpu = cpu_seconds(proc.pid) - cpu0
                if sub is not None:
                    sub.close()
                results[mode].append((cpu * 1000 / args.requests, args.requests / wall))
                print(f"{mode:8s} cpu {results[mode][-1][0]:.3f} ms/req, "
                      f"{results[mode][-1][1]:.0f} req/s", flush=True)  # fmt: skip
        state = httpx.get(url + "/llmproxy/state", headers={"authorization": f"Bearer {MASTER}"})
        dropped = state.json()["server"]["events_dropped"]
    base_cpu = statistics.median(r[0] for r in results["base"])
    st_cpu = statistics.median(r[0] for r in results["stalled"])
    base_rps = statistics.median(r[1] for r in results["base"])
    st_rps = statistics.median(r[1] for r in results["stalled"])
    print(f"median base:    {base_cpu:.3f} ms CPU/request, {base_rps:.0f} req/s")
    print(f"median stalled: {st_cpu:.3f} ms CPU/request, {st_rps:.0f} req/s")
    print(f"CPU/request {100 * (st_cpu / base_cpu - 1):+.1f} %, throughput "
          f"{100 * (st_rps / base_rps - 1):+.1f} %; events dropped: {dropped}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
