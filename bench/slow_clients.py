"""Do half-open connections hurt anyone? Thousands of clients that send half a request head.

Starts one `llmproxy-tui --no-tui` on a `mock/` group, measures normal requests (each on a new
connection, as a new client's would be), then opens N connections that each send half a
request head and stop, measures the normal requests again while they hang, and finally reports
how each half-open connection ended: a 408 at the read bound, closed unanswered to make room
under the connection cap, or still open. Also the proxy's open file descriptors and RSS.

Run: `python bench/slow_clients.py [--connections 10000] [--read-timeout 10]
[--proxy-fd-limit 1024]` (the last pins the proxy's open-file limit, as on many machines).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import cli_command, free_port

HALF_HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le"
BODY = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


def raise_fd_limit(want: int) -> int:
    """Raises RLIMIT_NOFILE toward `want` (past the hard limit only as root); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limit in (max(want, hard), hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, limit), max(hard, limit)))
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def start_proxy(
    tmp: Path, port: int, read_timeout: float, fd_limit: int | None
) -> subprocess.Popen[bytes]:
    """Starts the proxy; `fd_limit` pins its open-file limit (soft and hard) when given."""

    def pin() -> None:
        if fd_limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

    config = {
        "model_list": [
            {"model_name": "m", "litellm_params": {"model": "mock/x", "mock_response": "hi"}}
        ],
        "general_settings": {"client_read_timeout": read_timeout},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    cmd = [*cli_command(), "--no-tui", "--config", str(path), "--port", str(port)]
    cmd += ["--usage-db", str(tmp / "usage.db")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMPROXY_", "LITELLM_"))}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, preexec_fn=pin
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/liveness").status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the proxy did not start")


def proxy_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def proxy_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def normal_requests(url: str, count: int) -> tuple[list[float], int]:
    """`count` chat requests one after another, each on a new connection: ms each, failures."""
    times: list[float] = []
    failed = 0
    fresh = httpx.Limits(max_keepalive_connections=0)  # a new connection for every request
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=fresh) as client:
        for _ in range(count):
            started = time.perf_counter()
            try:
                response = await client.post("/v1/chat/completions", json=BODY)
                failed += response.status_code != 200
            except httpx.TransportError:
                failed += 1
            times.append((time.perf_counter() - started) * 1000)
    return times, failed


@dataclass
class HalfOpen:
    """The half-open connections and how each ended."""

    opened: int = 0
    failed_to_open: int = 0
    ended: dict[str, int] = field(default_factory=lambda: {"408": 0, "unanswered": 0, "other": 0})
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def open(self, port: int, count: int, batch: int = 500) -> None:
        for start in range(0, count, batch):
            results = await asyncio.gather(
                *(self._one(port) for _ in range(min(batch, count - start))),
                return_exceptions=True,
            )
            self.failed_to_open += sum(isinstance(r, BaseException) for r in results)

    async def _one(self, port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(HALF_HEAD)
        self.opened += 1
        self.writers.append(writer)
        self.tasks.append(asyncio.create_task(self._watch(reader)))

    async def _watch(self, reader: asyncio.StreamReader) -> None:
        try:
            data = await reader.read()  # until the proxy closes the connection
        except ConnectionError:
            data = b""
        kind = "408" if data.startswith(b"HTTP/1.1 408") else "unanswered" if not data else "other"
        self.ended[kind] += 1

    @property
    def still_open(self) -> int:
        return sum(not t.done() for t in self.tasks)

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for writer in self.writers:
            writer.close()


def summary(label: str, times: list[float], failed: int) -> None:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(
        f"{label:<34} p50 {statistics.median(ordered):6.2f} ms   p99 {p99:6.2f} ms   "
        f"max {ordered[-1]:6.2f} ms   failed {failed}/{len(times)}"
    )


async def run(args: argparse.Namespace) -> None:
    limit = raise_fd_limit(args.connections * 2 + 2000)
    count = min(args.connections, limit - 200)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_proxy(Path(tmp), port, args.read_timeout, args.proxy_fd_limit)
        url = f"http://127.0.0.1:{port}"
        try:
            print(f"open-file limit {limit}; {count} half-open connections")
            if args.proxy_fd_limit:
                print(f"the proxy's open-file limit pinned to {args.proxy_fd_limit}")
            print(f"client_read_timeout {args.read_timeout:g} s")
            await normal_requests(url, 20)  # warm up
            idle_fds = proxy_fds(proc.pid)
            summary("normal requests, no flood", *await normal_requests(url, args.requests))
            half = HalfOpen()
            started = time.monotonic()
            await half.open(port, count)
            opened_at = time.monotonic()
            print(
                f"opened {half.opened} half-open connections in "
                f"{time.monotonic() - started:.1f} s ({half.failed_to_open} failed)"
            )
            summary("normal requests, during the flood", *await normal_requests(url, args.requests))
            flood_fds, flood_rss = proxy_fds(proc.pid), proxy_rss_mib(proc.pid)
            print(
                f"proxy fds: idle {idle_fds}, during the flood {flood_fds}"
                f" (RSS {flood_rss:.0f} MiB)"
            )
            print(f"still open while the flood lasts: {half.still_open}, ended so far {half.ended}")
            # the last one opened at opened_at: its bound ends read_timeout after that
            await asyncio.sleep(max(0.0, opened_at + args.read_timeout + 2 - time.monotonic()))
            print(
                f"{time.monotonic() - opened_at:.0f} s after the last opened: "
                f"still open {half.still_open} of {half.opened}; ended {half.ended}"
            )
            print(f"proxy fds after the bound: {proxy_fds(proc.pid)}")
            summary("normal requests, after the flood", *await normal_requests(url, args.requests))
            half.close()
        finally:
            proc.terminate()
            proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200, help="normal requests per phase")
    parser.add_argument(
        "--proxy-fd-limit", type=int, help="pin the proxy's open-file limit (e.g. 1024)"
    )
    parser.add_argument(
        "--read-timeout", type=float, default=10, help="the proxy's client_read_timeout"
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
