"""Soak: does the proxy's memory stay flat over a long run of mixed requests?

Starts `llmproxy-tui --no-tui` (through this script's `--serve` mode, which only adds a
SIGUSR1 handler that reports RSS, open fds, threads and asyncio tasks, and with `--tracemalloc`
what grew since the last report) on mock groups with the local cache on, then sends
`--requests` requests over keep-alive connections: plain (each a cache miss), streamed, cache
hits, upstream errors (a deployment on a closed port) and client cancellations (a stream to a
slow mock dropped after its headers). Every `--every` requests it prints one line of the curve;
after the load it waits for the proxy to go idle and prints the idle line.

Run: `python bench/soak.py --requests 1000000` (default 300,000; `--requests 20000 --every
5000` for a quick look; `--tracemalloc` to see what grows, which makes the proxy much slower).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MASTER = "sk-soak-master-000000000000"
KINDS = (("plain", 55), ("stream", 20), ("hit", 15), ("error", 7), ("cancel", 3))
"""The mix, per 100 requests."""
_SLOW_WORDS = 400  # the cancelled stream would take 400 x 20 ms if nobody cancelled it


def write_config(path: Path) -> None:
    closed = _closed_port()
    slow = " ".join(f"w{i}" for i in range(_SLOW_WORDS))
    doc = {
        "model_list": [
            _mock("plain", "Hello from the soak: a short plain answer."),
            _mock("stream", "one two three four five"),
            _mock("slow", slow),
            {
                "model_name": "broken",
                "litellm_params": {
                    "model": "openai/gpt-4o-mini",
                    "api_base": f"http://127.0.0.1:{closed}/v1",
                    "api_key": "sk-soak-upstream-0000000000",
                },
            },
        ],
        "router_settings": {"num_retries": 0, "cooldown_time": 0.5, "allowed_fails": 1000},
        "litellm_settings": {"cache": True, "cache_params": {"type": "local", "ttl": 3600}},
        "general_settings": {"master_key": MASTER},
    }
    path.write_text(json.dumps(doc))  # JSON is YAML


def _mock(group: str, text: str) -> dict[str, Any]:
    return {
        "model_name": group,
        "litellm_params": {"model": f"mock/{group}", "mock_response": text},
    }


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- the proxy side (`--serve`): the real CLI plus a stats report on SIGUSR1 ----


def serve(cli_args: list[str]) -> int:
    import tracemalloc

    out = Path(os.environ["SOAK_STATS"])
    state: dict[str, Any] = {"seq": 0, "snap": None}

    def report(_sig: int, _frame: object) -> None:
        # Runs on the loop's thread, between two bytecodes of whatever runs: a bench-only stall.
        try:
            tasks = len(asyncio.all_tasks())
        except RuntimeError:
            tasks = -1
        state["seq"] += 1
        doc: dict[str, Any] = {
            "seq": state["seq"],
            "rss_mib": _rss_mib(),
            "fds": len(os.listdir("/proc/self/fd")),
            "tasks": tasks,
            "threads": len(os.listdir("/proc/self/task")),
            "grew": [],
        }
        if tracemalloc.is_tracing():
            snap = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__)]
            )
            if state["snap"] is not None:
                stats = snap.compare_to(state["snap"], "lineno")[:12]
                doc["grew"] = [f"{s.size_diff / 1024:+.0f} KiB {s.count_diff:+d} {s.traceback}"
                               for s in stats]  # fmt: skip
            state["snap"] = snap
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(out)

    signal.signal(signal.SIGUSR1, report)
    from tui.cli import main

    return main(cli_args)


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# ---- the load side ----


def _request(kind: str, n: int, port: int) -> bytes:
    group = {"plain": "plain", "hit": "plain", "stream": "stream", "error": "broken"}.get(
        kind, "slow"
    )
    content = "the same question" if kind == "hit" else f"question {n}"
    body: dict[str, Any] = {"model": group, "messages": [{"role": "user", "content": content}]}
    if kind in ("stream", "cancel"):
        body["stream"] = True
    raw = json.dumps(body).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        f"authorization: Bearer {MASTER}\r\ncontent-type: application/json\r\n"
        f"user-agent: soak/1\r\ncontent-length: {len(raw)}\r\n\r\n"
    )
    return head.encode() + raw


async def _read_answer(reader: asyncio.StreamReader) -> int:
    """Reads one HTTP/1.1 response (content-length or chunked). Returns: its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = dict(
        (k.strip().lower(), v.strip()) for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
    )
    if "content-length" in fields:
        await reader.readexactly(int(fields["content-length"]))
    elif fields.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


class Load:
    """Keep-alive workers pulling request numbers from one counter."""

    def __init__(self, port: int, total: int) -> None:
        self.port = port
        self.total = total
        self.next = 0
        self.done = 0
        self.statuses: dict[int, int] = {}
        self.mix = [kind for kind, share in KINDS for _ in range(share)]

    async def worker(self, stop_at: int) -> None:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while self.next < stop_at:
            n, self.next = self.next, self.next + 1
            kind = self.mix[(n * 37) % len(self.mix)]
            if kind == "cancel":
                await self._cancel(n)
                continue
            if conn is None:
                conn = await asyncio.open_connection("127.0.0.1", self.port)
            reader, writer = conn
            writer.write(_request(kind, n, self.port))
            try:
                status = await _read_answer(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()
                conn, status = None, -1
            self._count(status)
        if conn is not None:
            conn[1].close()

    async def _cancel(self, n: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(_request("cancel", n, self.port))
        head = await reader.readuntil(b"\r\n\r\n")
        await reader.read(256)  # the first chunk or so, then hang up
        writer.transport.abort()
        self._count(int(head.split()[1]))

    def _count(self, status: int) -> None:
        self.done += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1


async def stats(proc: subprocess.Popen[bytes], path: Path, seq: int) -> dict[str, Any]:
    proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            doc: dict[str, Any] = json.loads(await asyncio.to_thread(path.read_text))
            if doc["seq"] >= seq:
                return doc
        await asyncio.sleep(0.05)
    raise RuntimeError("the proxy did not report its stats")


async def wait_healthy(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(400):
        if proc.poll() is not None:
            raise RuntimeError(f"the proxy exited {proc.returncode}")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.write(f"GET /health/liveness HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n".encode())
        status = await _read_answer(reader)
        writer.close()
        if status == 200:
            return
    raise RuntimeError("the proxy did not become healthy")


def _line(label: str, done: int, elapsed: float, doc: dict[str, Any]) -> str:
    rate = done / elapsed if elapsed else 0.0
    return (
        f"| {label:>9} | {done:>9,} | {rate:>7.0f} | {doc['rss_mib']:>8.1f} | {doc['fds']:>4} "
        f"| {doc['tasks']:>5} | {doc['threads']:>7} |"
    )


def start_proxy(args: argparse.Namespace, tmp: Path, port: int) -> subprocess.Popen[bytes]:
    """Starts the proxy (`--serve` mode of this script); its output goes to tmp/stderr.log."""
    config = tmp / "config.yaml"
    write_config(config)
    python = [sys.executable] + (["-X", "tracemalloc=1"] if args.tracemalloc else [])
    cli = ["--no-tui", "--config", str(config), "--port", str(port)]
    cli += ["--usage-db", str(tmp / "usage.db"), "--log-file", str(tmp / "proxy.log")]
    env = {**os.environ, "SOAK_STATS": str(tmp / "stats.json")}
    with (tmp / "stderr.log").open("wb") as log:
        return subprocess.Popen(
            [*python, __file__, "--serve", *cli], env=env, stdout=log, stderr=subprocess.STDOUT
        )


async def soak(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="llmproxy-soak-"))
    stats_path = tmp / "stats.json"
    port = _closed_port()
    proc = start_proxy(args, tmp, port)
    seq = 0
    try:
        await wait_healthy(port, proc)
        seq += 1
        start_doc = await stats(proc, stats_path, seq)
        print(f"soak: {args.requests:,} requests, {args.connections} connections, mix {KINDS}")
        print("| requests | done | req/s | RSS MiB | fds | tasks | threads |".replace(
            "| requests | done", "|     stage |      done"))  # fmt: skip
        print("|---:|---:|---:|---:|---:|---:|---:|")
        print(_line("start", 0, 0, start_doc))
        load = Load(port, args.requests)
        started = time.monotonic()
        for stop_at in range(args.every, args.requests + 1, args.every):
            await asyncio.gather(*(load.worker(stop_at) for _ in range(args.connections)))
            seq += 1
            doc = await stats(proc, stats_path, seq)
            print(_line(f"{stop_at:,}", load.done, time.monotonic() - started, doc), flush=True)
            for grew in doc["grew"]:
                print(f"    {grew}")
        await asyncio.sleep(3)  # cancelled streams end, idle connections close
        seq += 1
        doc = await stats(proc, stats_path, seq)
        print(_line("idle", load.done, time.monotonic() - started, doc))
        print(f"statuses: {dict(sorted(load.statuses.items()))}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
    print(f"proxy exit code {code}; logs in {tmp}")
    return 0 if code == 0 else 1


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        return serve(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=300_000)
    p.add_argument("--every", type=int, default=100_000, help="report every N requests")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--tracemalloc", action="store_true", help="report what grew (slow)")
    args = p.parse_args()
    args.every = min(args.every, args.requests)
    return asyncio.run(soak(args))


if __name__ == "__main__":
    sys.exit(main())
