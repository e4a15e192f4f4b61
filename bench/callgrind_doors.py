"""Instructions per request through each front door, counted by callgrind: a figure that does
not move with the machine's other load, for comparing two builds of the hot path.

    python bench/callgrind_doors.py [--requests 40] [--warmup 15] [--only chat,responses-pass]

Runs the proxy (`python -m tui.cli --no-tui`) under `valgrind --tool=callgrind
--instr-atstart=no` against front_doors.py's nginx upstream, and for each path (front_doors.py's
table) sends `--warmup` requests, then turns instrumentation on, sends `--requests` requests one
after another on one keep-alive connection, turns it off and dumps. The proxy's instructions
(every thread) divided by the requests is that path's figure; the table gives each path's
difference over chat. It takes a few minutes: the proxy runs about 50 times slower under
valgrind. Needs valgrind (`apt-get install valgrind`) and front_doors.py's nginx.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import agent_payloads as ap
import front_doors as fd
import payloads
from proxy_proc import Proxy
from upstream import ensure_tools

_TOTALS = re.compile(rb"^totals:\s+(\d+)", re.MULTILINE)


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True, timeout=120)


def _dumped(out_dir: Path, before: set[Path]) -> int:
    """Returns the instructions in the dump files written since `before` (every thread's)."""
    total = 0
    for path in sorted(set(out_dir.glob("cg.out*")) - before):
        found = _TOTALS.findall(path.read_bytes())
        total += int(found[-1]) if found else 0
    return total


def measure(args: argparse.Namespace, tmp: Path, stack: contextlib.ExitStack) -> dict[str, float]:
    """Starts nginx and the proxy under callgrind; returns instructions per request by path."""
    nginx = fd.AgentNginx(tmp, core=fd.LOAD_CORE)
    nginx.echo_tools = not args.lean_responses_stream
    stack.callback(nginx.stop)
    nginx.start()
    out_dir = tmp / "cg"
    out_dir.mkdir()
    cmd = (
        "valgrind --tool=callgrind --instr-atstart=no --separate-threads=yes "
        f"--callgrind-out-file={out_dir}/cg.out.%p {sys.executable} -m tui.cli"
    )
    proxy = Proxy(tmp, nginx, core=fd.PROXY_CORE, proxy_cmd=cmd, extra_args="")
    proxy.config.write_text(fd.proxy_config(nginx))
    stack.callback(proxy.stop)
    proxy.start(timeout=600)
    assert proxy.proc is not None
    pid = str(proxy.proc.pid)
    results: dict[str, float] = {}
    for door in args.doors:
        target = fd.make_target(
            tmp,
            door.name,
            proxy.port,
            door.path,
            ap.request(door.wire, door.group),
            fd.client_headers(door.wire, payloads.MASTER_KEY),
        )
        client = fd.Client(proxy.port)
        try:
            for _ in range(args.warmup):
                _, _, status, body = client.post(target.raw)
                if status != 200:
                    raise RuntimeError(f"{door.name}: {status} {body[:400]!r}")
            before = set(out_dir.glob("cg.out*"))
            _control("-z", pid)
            _control("-i", "on", pid)
            for _ in range(args.requests):
                client.post(target.raw)
            _control("-i", "off", pid)
            _control("-d", pid)
            time.sleep(0.5)
        finally:
            client.close()
        results[door.name] = _dumped(out_dir, before) / args.requests
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            for path in set(out_dir.glob("cg.out*")) - before:
                shutil.copyfile(path, args.keep / f"{door.name}.{path.name}")
        print(f"{door.name}: {results[door.name] / 1e6:.3f} M instructions/request", flush=True)
    return results


def report(results: dict[str, float]) -> str:
    """Returns the markdown table: each path's instructions per request and over chat."""
    base = results.get("chat")
    lines = ["| path | M instructions / request | over chat |", "|---|---:|---:|"]
    for name, value in results.items():
        over = "" if base is None or name == "chat" else f"{(value - base) / 1e6:+.3f} M"
        lines.append(f"| {name} | {value / 1e6:.3f} | {over} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Runs the count and prints the table.

    Returns:
        The exit status.
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=40, help="requests counted per path")
    p.add_argument("--warmup", type=int, default=15, help="requests sent first, not counted")
    p.add_argument("--only", help="comma-separated paths: " + ", ".join(fd.BY_NAME))
    p.add_argument(
        "--lean-responses-stream",
        action="store_true",
        help="the upstream's Responses events do not echo the request's tools (a ~5 KB stream)",
    )
    p.add_argument("--keep", type=Path, help="copy each path's dump files into this directory")
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else [d.name for d in fd.DOORS]
    if "chat" not in names:
        names.insert(0, "chat")
    args.doors = [fd.BY_NAME[n] for n in names]
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("needs valgrind: apt-get install valgrind", file=sys.stderr)
        return 2
    ensure_tools()
    with tempfile.TemporaryDirectory(prefix="cg-doors-") as name, contextlib.ExitStack() as stack:
        results = measure(args, Path(name), stack)
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
