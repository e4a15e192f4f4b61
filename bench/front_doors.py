"""Agent-sized requests through each front door: proxy CPU per request and added TTFB.

    python bench/front_doors.py [--snapshot] [--rounds 5] [--duration 5] [--connections 16]
                                [--ttfb-requests 300] [--only chat,messages-pass,...]
                                [--profile [PATHS|missed]] [--lean-responses-stream] [--out DIR]

One streamed coding-agent turn (about 58 KB: 25 tools, 40 messages; `agent_payloads.py`) in
each client's own wire format goes through five paths against a zero-latency nginx upstream
that streams about 20 recorded-shape events (Chat Completions chunks at `/oa/v1/chat/completions`,
Responses events at `/oa/v1/responses`, Anthropic Messages events at `/an/v1/messages`):

| path | client sends | group | upstream call |
|---|---|---|---|
| chat | POST /v1/chat/completions | openai/ | /chat/completions |
| messages-pass | POST /v1/messages | anthropic/ | /v1/messages, the body passed through |
| messages-translated | POST /v1/messages | openai/ | /chat/completions, translated both ways |
| responses-pass | POST /v1/responses | openai/ | /responses, the body passed through |
| responses-translated | POST /v1/responses | anthropic/ | /v1/messages, translated both ways |

Each round runs, per path in an order rotated every round, wrk direct to the upstream and then
wrk through the proxy (the proxy's CPU per request from /proc); then a sequential Python client
times the first and last byte of each answer, alternating a request direct and one through the
proxy, with all paths interleaved request by request so that other load on the machine falls on
every path alike. "Direct" is the request the proxy itself makes upstream (the upstream's wire
format, same content), so added TTFB is what a client pays for going through the proxy. The
figures are medians over rounds; the differences vs chat are medians of per-round differences.
nginx, wrk and the TTFB client share core 1; the proxy is alone on core 0. A pass-through path
is checked to be one (its answer carries the upstream's own message / response id).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import agent_payloads as ap
import payloads
import procs
import spy_profile
from load import LoadResult, parse_wrk
from proxy_proc import HOST, Proxy
from upstream import ECHO_MODULE, Nginx, ensure_tools

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
LUA = BENCH / "wrk" / "front_door.lua"
PROXY_CORE, LOAD_CORE = 0, 1
OPENAI_MODEL, ANTHROPIC_MODEL = payloads.UPSTREAM_MODEL, "claude-bench-model"
OPENAI_GROUP, ANTHROPIC_GROUP = "gpt-agent", "claude-agent"
CPU_TARGET_US = 500.0
"""Translation may add at most this much proxy CPU per agent-sized request over chat."""


@dataclass(frozen=True)
class Door:
    """One path through the proxy, and the upstream request it makes."""

    name: str
    label: str
    path: str
    wire: str
    group: str
    upstream_path: str
    upstream_wire: str
    passthrough: bool


DOORS = (
    Door(
        "chat",
        "chat",
        "/v1/chat/completions",
        "chat",
        OPENAI_GROUP,
        "/oa/v1/chat/completions",
        "chat",
        False,
    ),
    Door(
        "messages-pass",
        "Messages pass-through",
        "/v1/messages?beta=true",
        "messages",
        ANTHROPIC_GROUP,
        "/an/v1/messages",
        "messages",
        True,
    ),
    Door(
        "messages-translated",
        "Messages translated",
        "/v1/messages?beta=true",
        "messages",
        OPENAI_GROUP,
        "/oa/v1/chat/completions",
        "chat",
        False,
    ),
    Door(
        "responses-pass",
        "Responses pass-through",
        "/v1/responses",
        "responses",
        OPENAI_GROUP,
        "/oa/v1/responses",
        "responses",
        True,
    ),
    Door(
        "responses-translated",
        "Responses translated",
        "/v1/responses",
        "responses",
        ANTHROPIC_GROUP,
        "/an/v1/messages",
        "messages",
        False,
    ),
)
BY_NAME = {d.name: d for d in DOORS}
UPSTREAM_ID = {
    "messages": "msg_01AgentBenchStream000001",
    "responses": "resp_0agentbench00000000000000000001",
}
"""The ids in nginx's recorded streams: a passed-through answer carries them, a translated
one has the proxy's own."""


def client_headers(wire: str, key: str) -> dict[str, str]:
    """The headers each client sends: OpenCode (chat), Claude Code (messages), Codex (responses).

    Returns:
        Header name to value.
    """
    common = {"Content-Type": "application/json"}
    if wire == "chat":
        return {
            **common,
            "Authorization": f"Bearer {key}",
            "Accept": "text/event-stream",
            "User-Agent": "opencode/1.18.33 ai-sdk/provider-utils/3.0.9 runtime/bun/1.2.21",
            "x-session-affinity": ap.SESSION_ID,
            "x-session-id": ap.SESSION_ID,
        }
    if wire == "messages":
        return {
            **common,
            "x-api-key": key,
            "Accept": "application/json",
            "anthropic-version": "2023-06-01",
            "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
            "x-app": "cli",
            "User-Agent": "claude-cli/2.1.332 (external, sdk-cli)",
            "X-Claude-Code-Session-Id": ap.SESSION_ID,
        }
    return {
        **common,
        "Authorization": f"Bearer {key}",
        "Accept": "text/event-stream",
        "User-Agent": "codex_exec/0.171.0 (Debian 12.0.0; x86_64) unknown",
        "originator": "codex_exec",
        "session-id": ap.SESSION_ID,
    }


# --- the upstream -----------------------------------------------------------------------------

_NGINX = """daemon off;
master_process off;
worker_processes 1;
pid @TMP@/nginx.pid;
error_log @TMP@/error.log warn;
load_module @ECHO_MODULE@;
events { worker_connections 8192; multi_accept on; }
http {
    access_log off;
    client_body_temp_path @TMP@/client_body;
    proxy_temp_path @TMP@/proxy;
    fastcgi_temp_path @TMP@/fastcgi;
    uwsgi_temp_path @TMP@/uwsgi;
    scgi_temp_path @TMP@/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    client_body_buffer_size 256k;
    client_max_body_size 4m;
    server_tokens off;
    server {
        listen 127.0.0.1:@PORT@ backlog=4096;
@LOCATIONS@
        location / {
            default_type application/json;
            return 404 '@NOT_FOUND@';
        }
    }
}
"""
_NOT_FOUND = json.dumps(
    {"error": {"message": "bench upstream: no such path", "type": "invalid_request_error",
               "param": None, "code": None}},
    separators=(",", ":"),
)  # fmt: skip
_MAX_TOKEN = 3500
"""nginx refuses a config token above 4 KiB: a long event goes out in several `echo -n`s."""


def _echoes(events: list[str]) -> str:
    lines = ["            echo_read_request_body;"]
    for event in events:
        piece = ""
        for ch in event:
            quoted = _quote(ch)
            if len(piece) + len(quoted) > _MAX_TOKEN:
                lines.append(f"            echo -n '{piece}';")
                piece = ""
            piece += quoted
        lines.append(f"            echo -n '{piece}';")
    return "\n".join(lines)


def _quote(ch: str) -> str:
    if ch == "$":
        raise ValueError("nginx would expand '$' in a canned body")
    return {"\\": "\\\\", "'": "\\'", "\n": "\\n"}.get(ch, ch)


def nginx_config(tmp: Path, port: int, *, echo_tools: bool = True) -> str:
    """The nginx config serving the three recorded streams.

    Returns:
        The config text.
    """
    streams = {
        "/oa/v1/chat/completions": ap.chat_stream(OPENAI_MODEL),
        "/oa/v1/responses": ap.responses_stream(OPENAI_MODEL, echo_tools=echo_tools),
        "/an/v1/messages": ap.messages_stream(ANTHROPIC_MODEL),
    }
    locations = "\n".join(
        f"        location = {path} {{\n            default_type text/event-stream;\n"
        f"            add_header Cache-Control no-cache;\n{_echoes(events)}\n        }}"
        for path, events in streams.items()
    )
    text = _NGINX
    for marker, value in (
        ("@TMP@", str(tmp)),
        ("@PORT@", str(port)),
        ("@ECHO_MODULE@", str(ECHO_MODULE)),
        ("@LOCATIONS@", locations),
        ("@NOT_FOUND@", _NOT_FOUND.replace("'", "\\'")),
    ):
        text = text.replace(marker, value)
    return text


class AgentNginx(Nginx):
    """bench/upstream.py's nginx (one process, pinned, own temp dir) with the agent streams."""

    echo_tools = True

    def start(self) -> None:
        """Write the config and start nginx; return once it answers.

        Raises:
            RuntimeError: nginx rejected its config or did not come up.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = procs.free_port()
        conf = self.dir / "nginx.conf"
        conf.write_text(nginx_config(self.dir, self.port, echo_tools=self.echo_tools))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        argv = [nginx, "-p", str(self.dir), "-c", str(conf), "-e", str(self.dir / "error.log")]
        check = subprocess.run([*argv, "-t"], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t failed:\n{check.stderr}")
        self.proc = procs.spawn(argv, core=self.core, log=self.dir / "stdout.log")
        self._wait_up()


def proxy_config(nginx: Nginx) -> str:
    """The proxy's config: one openai/ and one anthropic/ group on nginx; no cache.

    Returns:
        The YAML text.
    """
    base = f"http://127.0.0.1:{nginx.port}"
    lines = ["model_list:"]
    for group, model, api_base in (
        (OPENAI_GROUP, f"openai/{OPENAI_MODEL}", f"{base}/oa/v1"),
        (ANTHROPIC_GROUP, f"anthropic/{ANTHROPIC_MODEL}", f"{base}/an"),
    ):
        lines += [
            f"  - model_name: {group}",
            "    litellm_params:",
            f"      model: {model}",
            f"      api_base: {api_base}",
            f"      api_key: {payloads.UPSTREAM_KEY}",
        ]
    lines += ["general_settings:", "  master_key: os.environ/LITELLM_MASTER_KEY", ""]
    return "\n".join(lines)


# --- one request, timed -----------------------------------------------------------------------


@dataclass
class Target:
    """A prepared POST (body and headers on disk for wrk, raw bytes for the TTFB client)."""

    port: int
    path: str
    body_file: Path
    headers_file: Path
    raw: bytes

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{self.path}"


def make_target(
    dirpath: Path, name: str, port: int, path: str, body: bytes, headers: dict[str, str]
) -> Target:
    """Writes the body and headers of one target.

    Returns:
        The target.
    """
    body_file, headers_file = dirpath / f"{name}.json", dirpath / f"{name}.headers"
    body_file.write_bytes(body)
    headers_file.write_text("".join(f"{k}: {v}\n" for k, v in headers.items()))
    head = f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    raw = (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    return Target(port, path, body_file, headers_file, raw)


class Client:
    """One keep-alive HTTP/1.1 connection that times each answer's first and last byte."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((HOST, self.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def post(self, raw: bytes) -> tuple[float, float, int, bytes]:
        """Sends one prepared request and reads the whole answer.

        Returns:
            Seconds to the first byte, seconds to the last byte, the status, the decoded body.

        Raises:
            RuntimeError: the answer could not be read.
        """
        if self.sock is None:
            self.sock = self._connect()
        sock = self.sock
        t0 = time.perf_counter()
        sock.sendall(raw)
        buf = sock.recv(262144)
        t1 = time.perf_counter()
        while b"\r\n\r\n" not in buf:
            buf += self._recv()
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        if hdrs.get("transfer-encoding", "").lower() == "chunked":
            while not rest.endswith(b"\r\n0\r\n\r\n") and rest != b"0\r\n\r\n":
                rest += self._recv()
        else:
            length = int(hdrs.get("content-length", "0"))
            while len(rest) < length:
                rest += self._recv()
        t2 = time.perf_counter()
        if hdrs.get("connection", "").lower() == "close":
            self.close()
        return t1 - t0, t2 - t0, status, rest

    def _recv(self) -> bytes:
        assert self.sock is not None
        data = self.sock.recv(262144)
        if not data:
            self.close()
            raise RuntimeError(f"port {self.port} closed the connection mid-answer")
        return data

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def dechunk(data: bytes) -> bytes:
    """Returns a chunked body's payload."""
    out, pos = bytearray(), 0
    while True:
        end = data.index(b"\r\n", pos)
        size = int(data[pos:end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += data[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2


def sse_types(text: str) -> list[str]:
    """Returns each SSE event's name (its `event:` line, else its data's `type`, else the data)."""
    out = []
    for block in text.replace("\r\n", "\n").strip().split("\n\n"):
        name = next((ln[6:].strip() for ln in block.split("\n") if ln.startswith("event:")), None)
        data = next((ln[5:].strip() for ln in block.split("\n") if ln.startswith("data:")), "")
        if name is None:
            try:
                doc = json.loads(data)
                name = doc.get("type") or doc.get("object") or "?"
            except ValueError:
                name = data
        out.append(name)
    return out


_LAST_EVENT = {"chat": "[DONE]", "messages": "message_stop", "responses": "response.completed"}
_TOOL_MARK = {"chat": '"tool_calls"', "messages": '"tool_use"', "responses": '"function_call"'}


def check(door: Door, proxy: Target, direct: Target, port_proxy: int, port_direct: int) -> dict:
    """POSTs once through the proxy and once direct and checks both streams are complete.

    Returns:
        What was seen: event counts and bytes each way, and whether the answer passed through.

    Raises:
        RuntimeError: an answer is not a 200 with a complete stream in the client's format.
    """
    seen: dict[str, Any] = {}
    for label, target, port, wire in (
        ("proxy", proxy, port_proxy, door.wire),
        ("direct", direct, port_direct, door.upstream_wire),
    ):
        client = Client(port)
        try:
            _, _, status, body = client.post(target.raw)
        finally:
            client.close()
        text = dechunk(body).decode() if body.endswith(b"0\r\n\r\n") else body.decode()
        if status != 200:
            raise RuntimeError(
                f"{door.name} {label}: POST {target.path} answered {status}: {text[:600]}"
            )
        types = sse_types(text)
        if not types or types[-1] != _LAST_EVENT[wire] or _TOOL_MARK[wire] not in text:
            raise RuntimeError(
                f"{door.name} {label}: not a complete {wire} stream with a tool "
                f"call: {types}\n{text[-600:]}"
            )
        seen[f"{label}_events"] = len(types)
        seen[f"{label}_bytes"] = len(text)
        if label == "proxy" and wire in UPSTREAM_ID:
            seen["passed_through"] = UPSTREAM_ID[wire] in text
    return seen


# --- load and measurement ---------------------------------------------------------------------


def run_wrk(target: Target, connections: int, seconds: int, save: Path | None) -> LoadResult:
    """wrk (one thread, pinned to the load core) POSTing target's body with its headers.

    Returns:
        The parsed result.

    Raises:
        RuntimeError: wrk failed.
    """
    argv = [
        "taskset",
        "-c",
        str(LOAD_CORE),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(LUA),
        target.url,
    ]
    env = {
        **os.environ,
        "BENCH_BODY_FILE": str(target.body_file),
        "BENCH_HEADERS_FILE": str(target.headers_file),
    }
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    if save is not None:
        save.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited {done.returncode}: {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


@dataclass
class Round:
    """One round's figures for one path."""

    direct_rps: float
    proxy_rps: float
    cpu_us: float
    cpu_user_us: float
    cpu_sys_us: float
    errors: int
    ttfb_direct_ms: float
    ttfb_proxy_ms: float
    last_direct_ms: float
    last_proxy_ms: float
    ttfb_p10_added_ms: float
    ttfb_p90_added_ms: float
    cpu_c1_us: float


@dataclass
class DoorResult:
    door: Door
    checks: dict[str, Any] = field(default_factory=dict)
    rounds: list[Round] = field(default_factory=list)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Pair:
    """A keep-alive connection direct and one through the proxy, for one path's TTFB."""

    def __init__(self, proxy: Target, direct: Target) -> None:
        self.targets = {"d": direct, "p": proxy}
        self.clients = {"d": Client(direct.port), "p": Client(proxy.port)}
        self.times: dict[str, list[tuple[float, float]]] = {"d": [], "p": []}
        self.cpu = 0.0

    def run(self, n: int, pid: int, *, keep: bool = True) -> None:
        """n request pairs, alternating which goes first; the proxy's CPU over them is added."""
        cpu0 = procs.tree_cpu_seconds(pid)
        for i in range(n):
            for key in ("d", "p") if i % 2 == 0 else ("p", "d"):
                target = self.targets[key]
                first, last, status, _ = self.clients[key].post(target.raw)
                if status != 200:
                    raise RuntimeError(f"TTFB run: {target.url} answered {status}")
                if keep:
                    self.times[key].append((first * 1e3, last * 1e3))
        if keep:
            self.cpu += procs.tree_cpu_seconds(pid) - cpu0

    def close(self) -> None:
        for c in self.clients.values():
            c.close()

    def figures(self) -> dict[str, float]:
        """Returns, in ms: p50 TTFB direct and proxy, p50 last byte direct and proxy, the p10
        and p90 TTFB differences; and the proxy's CPU µs per request over these requests."""
        d_first, p_first = [t[0] for t in self.times["d"]], [t[0] for t in self.times["p"]]
        return {
            "ttfb_direct_ms": statistics.median(d_first),
            "ttfb_proxy_ms": statistics.median(p_first),
            "last_direct_ms": statistics.median(t[1] for t in self.times["d"]),
            "last_proxy_ms": statistics.median(t[1] for t in self.times["p"]),
            "ttfb_p10_added_ms": _p(p_first, 0.1) - _p(d_first, 0.1),
            "ttfb_p90_added_ms": _p(p_first, 0.9) - _p(d_first, 0.9),
            "cpu_c1_us": self.cpu / len(p_first) * 1e6,
        }


def ttfb_phase(
    doors: list[Door], targets: dict[str, tuple[Target, Target]], pid: int, args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    """Sequential requests for TTFB, all paths interleaved: `--ttfb-block` pairs (default one)
    per path in turn, until each path has `--ttfb-requests` pairs, so that whatever else the
    machine is doing meanwhile falls on every path alike. (The proxy's CPU per request at
    concurrency 1 is read around each block, from 10 ms ticks: a rough figure, kept in the JSON.)

    Returns:
        Path name → `Pair.figures()`.
    """
    pairs = {d.name: Pair(*targets[d.name]) for d in doors}
    try:
        for pair in pairs.values():
            pair.run(5, pid, keep=False)  # open and warm the connections
        done = 0
        while done < args.ttfb_requests:
            n = min(args.ttfb_block, args.ttfb_requests - done)
            for pair in pairs.values():
                pair.run(n, pid)
            done += n
    finally:
        for pair in pairs.values():
            pair.close()
    return {name: pair.figures() for name, pair in pairs.items()}


def load_run(
    door: Door, proxy_t: Target, direct_t: Target, pid: int, args: argparse.Namespace
) -> dict[str, float]:
    """wrk direct, then wrk through the proxy with the proxy's CPU from /proc.

    Returns:
        direct_rps, proxy_rps, cpu_us (per request through the proxy), errors.
    """
    direct = run_wrk(
        direct_t, args.connections, args.duration, args.out / f"fd-wrk-{door.name}-direct.txt"
    )
    user0, sys0 = procs.tree_cpu_split(pid)
    through = run_wrk(
        proxy_t, args.connections, args.duration, args.out / f"fd-wrk-{door.name}-proxy.txt"
    )
    user1, sys1 = procs.tree_cpu_split(pid)
    per = 1e6 / through.requests if through.requests else float("nan")
    return {
        "direct_rps": direct.rps,
        "proxy_rps": through.rps,
        "cpu_us": (user1 - user0 + sys1 - sys0) * per,
        "cpu_user_us": (user1 - user0) * per,
        "cpu_sys_us": (sys1 - sys0) * per,
        "errors": through.errors + direct.errors,
    }


def measure_round(
    doors: list[Door], targets: dict[str, tuple[Target, Target]], pid: int,
    args: argparse.Namespace, r: int,
) -> dict[str, Round]:  # fmt: skip
    """One round: each path's wrk runs (in an order rotated by the round), then the TTFB phase.

    Returns:
        Path name → the round's figures.
    """
    k = r % len(doors)
    loads = {d.name: load_run(d, *targets[d.name], pid, args) for d in doors[k:] + doors[:k]}
    ttfbs = ttfb_phase(doors[k:] + doors[:k], targets, pid, args)
    out = {}
    for d in doors:
        rnd = out[d.name] = Round(**loads[d.name], **ttfbs[d.name])
        _log(
            f"round {r + 1} {d.name:21s} direct {rnd.direct_rps:7,.0f} req/s | proxy "
            f"{rnd.proxy_rps:6,.0f} req/s, {rnd.cpu_us:5.0f} µs CPU/req "
            f"(user {rnd.cpu_user_us:.0f}, system {rnd.cpu_sys_us:.0f}; c1: {rnd.cpu_c1_us:5.0f})"
            f", errors {rnd.errors} | TTFB p50 direct {rnd.ttfb_direct_ms:.3f} ms, proxy "
            f"{rnd.ttfb_proxy_ms:.3f} ms (+{rnd.ttfb_proxy_ms - rnd.ttfb_direct_ms:.3f}; "
            f"p10 +{rnd.ttfb_p10_added_ms:.3f})"
        )
    return out


def _log(msg: str) -> None:
    print(f"[front-doors {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def _self_cpu() -> float:
    """CPU seconds of this process and its waited-for children (wrk, py-spy)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _busy() -> tuple[float, float]:
    """Returns the machine's busy and total CPU seconds so far (all cores, from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    tick = os.sysconf("SC_CLK_TCK")
    return (total - idle) / tick, total / tick


# --- profile ----------------------------------------------------------------------------------

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>-?\d+))?\)$")


def _short(path: str) -> str:
    for mine in ("/proxy/", "/tui/"):  # the repo's or a --snapshot copy's
        if mine in path and "site-packages/" not in path:
            return mine[1:] + path.rsplit(mine, 1)[1]
    path = path.split("site-packages/", 1)[-1]
    return re.sub(r"^.*python3\.\d+/", "", path)


def fold(raw: Path) -> dict[str, Counter[str]]:
    """Folds py-spy's collapsed stacks (`func (file:line);... count`).

    Returns:
        Counters of samples: `total`; `self` by leaf `file:line (func)`; `proxy_line` and
        `proxy_fn` by the deepest frame in proxy/ (`file:line (func)`, `file (func)`: the proxy
        code responsible for the time, the library calls it makes included; these sum to the
        total); `incl` inclusive by proxy/ function.
    """
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        out["total"]["all"] += count
        frames = []
        for frame in stack.split(";"):
            m = _FRAME.match(frame.strip())
            if m:
                frames.append((m["func"], _short(m["file"]), m["line"] or "?"))
            else:
                frames.append((frame, "?", "?"))
        func, file, ln = frames[-1]
        out["self"][f"{file}:{ln} ({func})"] += count
        mine = [f for f in frames if f[1].startswith("proxy/")]
        if mine:
            func, file, ln = mine[-1]
            out["proxy_line"][f"{file}:{ln} ({func})"] += count
            out["proxy_fn"][f"{file} ({func})"] += count
        else:
            out["proxy_line"][OUTSIDE] += count
            out["proxy_fn"][OUTSIDE] += count
        for name in {f"{f[1]} ({f[0]})" for f in mine}:
            out["incl"][name] += count
    return out


OUTSIDE = "(outside proxy/: the event loop, uvicorn, aiohttp)"


def profile(door: Door, proxy_t: Target, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    """One more wrk run of `door` with py-spy recording the proxy (numbers not in the table).

    Returns:
        The CPU µs per request of that run and the folded stacks in µs per request.
    """
    raw = args.out / f"fd-profile-{door.name}.txt"
    raw.unlink(missing_ok=True)
    seconds = max(args.duration, 8)
    spy = spy_profile.start_record(pid, seconds, raw, LOAD_CORE)
    time.sleep(0.5)
    try:
        cpu0 = procs.tree_cpu_seconds(pid)
        res = run_wrk(proxy_t, args.connections, seconds - 1, None)
        cpu = procs.tree_cpu_seconds(pid) - cpu0
        _, err = spy.communicate(timeout=seconds + 60)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait()
    if not raw.exists():
        raise RuntimeError(f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}")
    cpu_us = cpu / res.requests * 1e6
    folded = fold(raw)
    total = folded["total"]["all"] or 1
    us = {
        k: {name: n / total * cpu_us for name, n in c.items()}
        for k, c in folded.items()
        if k != "total"
    }
    _log(f"profiled {door.name}: {cpu_us:.0f} µs CPU/req, {total} samples, stacks in {raw}")
    return {"cpu_us": cpu_us, "samples": total, "us": us, "raw": str(raw)}


def _source_line(where: str, root: Path) -> str:
    """The code at `proxy/x.py:123 (func)`, read from the build that ran."""
    m = re.match(r"^(proxy/\S+?):(\d+) ", where)
    if not m:
        return ""
    try:
        text = (root / m[1]).read_text().splitlines()[int(m[2]) - 1].strip()
    except (OSError, IndexError):
        return ""
    return f"`{text[:90]}`"


def profile_report(profiles: dict[str, dict[str, Any]], root: Path, top: int = 12) -> str:
    """Markdown: per profiled path, the proxy lines that cost the most µs per request, and beside
    chat, the proxy functions whose cost differs most from chat's.

    Returns:
        The markdown text.
    """
    out = [
        "## Where the time goes (py-spy, µs of proxy CPU per request)",
        "",
        "Each sample is charged to the deepest frame in proxy/ on its stack (the library "
        "calls that code makes included), scaled to the CPU per request of the profiled run.",
        "",
    ]
    base = profiles.get("chat")
    for name, prof in profiles.items():
        out += [
            f"### {BY_NAME[name].label}: {prof['cpu_us']:.0f} µs CPU/request "
            f"({prof['samples']} samples)",
            "",
            "| µs/req | where | code |",
            "|---:|---|---|",
        ]
        for where, v in sorted(prof["us"]["proxy_line"].items(), key=lambda kv: -kv[1])[:top]:
            out.append(f"| {v:.0f} | `{where}` | {_source_line(where, root)} |")
        out.append("")
        if base is None or name == "chat":
            continue
        diff = {
            k: v - base["us"]["proxy_fn"].get(k, 0.0) for k, v in prof["us"]["proxy_fn"].items()
        }
        for k, v in base["us"]["proxy_fn"].items():
            diff.setdefault(k, -v)
        out += [
            "By proxy function, vs chat:",
            "",
            "| vs chat | here | function |",
            "|---:|---:|---|",
        ]
        for k, v in sorted(diff.items(), key=lambda kv: -abs(kv[1]))[:top]:
            out.append(f"| {v:+.0f} | {prof['us']['proxy_fn'].get(k, 0.0):.0f} | `{k}` |")
        phases = {
            k: v
            for k, v in prof["us"]["incl"].items()
            if k.startswith(("proxy/endpoints/", "proxy/providers/")) and v >= 20
        }
        if phases:
            out += [
                "",
                "Translation and wire-format code, inclusive:",
                "",
                "| here | function |",
                "|---:|---|",
            ]
            for k, v in sorted(phases.items(), key=lambda kv: -kv[1])[:top]:
                out.append(f"| {v:.0f} | `{k}` |")
        out.append("")
    return "\n".join(out)


# --- the report -------------------------------------------------------------------------------


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _vs_chat(rs: list[Round], chat: list[Round], metric: str) -> list[float]:
    """Per-round differences of a metric from chat's in the same round."""
    return [getattr(a, metric) - getattr(b, metric) for a, b in zip(rs, chat, strict=True)]


def table(results: dict[str, DoorResult], args: argparse.Namespace) -> tuple[str, list[str]]:
    """The main table, the cross-check table and the target lines.

    Returns:
        (markdown tables, target lines).
    """
    chat = results.get("chat")
    c = args.connections
    main = [
        f"| path | events out / upstream | direct req/s | proxy req/s (c{c}) | proxy CPU µs/req "
        "| CPU vs chat | TTFB p50 direct | TTFB p50 proxy | added TTFB p50 | added TTFB vs chat |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    extra = [
        f"| path | CPU µs/req per round (c{c}) | CPU vs chat per round | added TTFB per round "
        "| added TTFB p10 / p90 | added last byte p50 |",
        "|---|---|---|---|---:|---:|",
    ]
    targets: list[str] = []
    for name, res in results.items():
        door, rs = res.door, res.rounds
        label = door.label
        if door.passthrough and not res.checks.get("passed_through"):
            label += " **(not yet available: translated)**"
        errors = sum(r.errors for r in rs)
        if errors:
            label += f" **errors {errors}**"
        for r in rs:
            r.added_ms = r.ttfb_proxy_ms - r.ttfb_direct_ms  # type: ignore[attr-defined]
            r.added_last_ms = r.last_proxy_ms - r.last_direct_ms  # type: ignore[attr-defined]
        paired = chat is not None and name != "chat" and len(chat.rounds) == len(rs)
        d_cpu = _med(_vs_chat(rs, chat.rounds, "cpu_us")) if paired else None
        d_ttfb = _med(_vs_chat(rs, chat.rounds, "added_ms")) if paired else None
        per_round = ", ".join(f"{r.cpu_us:.0f}" for r in rs)
        per_round_vs = (
            ", ".join(f"{d:+.0f}" for d in _vs_chat(rs, chat.rounds, "cpu_us")) if (paired) else "-"
        )
        main.append(
            f"| {label} | {res.checks.get('proxy_events')} / {res.checks.get('direct_events')}"
            f" | {_med([r.direct_rps for r in rs]):,.0f} | {_med([r.proxy_rps for r in rs]):,.0f}"
            f" | {_med([r.cpu_us for r in rs]):.0f}"
            f" | {'-' if d_cpu is None else f'{d_cpu:+.0f} µs'}"
            f" | {_med([r.ttfb_direct_ms for r in rs]):.2f} ms"
            f" | {_med([r.ttfb_proxy_ms for r in rs]):.2f} ms"
            f" | {_med([r.added_ms for r in rs]):.2f} ms"  # type: ignore[attr-defined]
            f" | {'-' if d_ttfb is None else f'{d_ttfb:+.2f} ms'} |"
        )
        extra.append(
            f"| {door.label} | {per_round} | {per_round_vs}"
            f" | {', '.join(f'{r.added_ms:.2f}' for r in rs)}"  # type: ignore[attr-defined]
            f" | {_med([r.ttfb_p10_added_ms for r in rs]):.2f} / "
            f"{_med([r.ttfb_p90_added_ms for r in rs]):.2f} ms"
            f" | {_med([r.added_last_ms for r in rs]):.2f} ms |"  # type: ignore[attr-defined]
        )
        if d_cpu is None:
            continue
        spread = _vs_chat(rs, chat.rounds, "cpu_us") if chat else []
        rng = f" (per round {min(spread):+.0f} … {max(spread):+.0f})" if spread else ""
        if door.passthrough and res.checks.get("passed_through"):
            verdict = "met" if d_cpu <= 0 else "MISSED"
            targets.append(
                f"- {door.label} costs no more CPU than chat: {d_cpu:+.0f} µs/req{rng} → {verdict}"
            )
        elif door.passthrough:
            targets.append(
                f"- {door.label}: not yet available (the proxy translated it to Chat "
                "Completions), no target checked"
            )
        else:
            verdict = "met" if d_cpu <= CPU_TARGET_US else "MISSED"
            targets.append(
                f"- {door.label} adds ≤ {CPU_TARGET_US:.0f} µs CPU over chat: "
                f"{d_cpu:+.0f} µs/req{rng} → {verdict}"
            )
    return "\n".join(main) + "\n\nCross-checks:\n\n" + "\n".join(extra), targets


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (medians shown)")
    p.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    p.add_argument("--connections", type=int, default=16, help="wrk connections")
    p.add_argument(
        "--ttfb-requests", type=int, default=300, help="sequential request pairs per round for TTFB"
    )
    p.add_argument(
        "--ttfb-block", type=int, default=1, help="TTFB pairs per path before the next path's"
    )
    p.add_argument(
        "--lean-responses-stream",
        action="store_true",
        help="the upstream's Responses stream without the 25 tools OpenAI repeats in its "
        "response.created / in_progress / completed events (8 KB instead of 59 KB)",
    )
    p.add_argument("--only", help="comma-separated paths: " + ", ".join(BY_NAME))
    p.add_argument(
        "--profile",
        nargs="?",
        const="missed",
        metavar="PATHS",
        help="after the rounds, py-spy the proxy under each of these paths (comma-"
        "separated; `missed`, the default: the paths that missed a target, plus chat)",
    )
    p.add_argument("--proxy-cmd", help="command to benchmark instead of llmproxy-tui")
    p.add_argument(
        "--snapshot",
        action="store_true",
        help="copy proxy/ and tui/ from the working tree at the start and run that "
        "copy, so edits made meanwhile do not change the build under test",
    )
    p.add_argument("--extra-proxy-args", default="", help="appended to the proxy command")
    p.add_argument("--out", type=Path, default=BENCH / "results", help="results directory")
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else list(BY_NAME)
    unknown = set(names) - set(BY_NAME)
    if unknown:
        p.error(f"unknown path(s): {', '.join(sorted(unknown))}")
    args.doors = [BY_NAME[n] for n in BY_NAME if n in names]
    args.root = REPO
    return args


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def bench(args: argparse.Namespace, tmp: Path, stack: contextlib.ExitStack) -> str:
    """Everything: start nginx and the proxy, check, measure, profile; returns the report."""
    if args.snapshot:
        snap = tmp / "snapshot"
        for pkg in ("proxy", "tui"):
            shutil.copytree(REPO / pkg, snap / pkg, ignore=shutil.ignore_patterns("__pycache__"))
        args.proxy_cmd = f"env PYTHONPATH={snap} {sys.executable} -m tui.cli"
        args.root = snap
        _log(f"running a copy of proxy/ and tui/ taken now, in {snap}")
    nginx = AgentNginx(tmp, core=LOAD_CORE)
    nginx.echo_tools = not args.lean_responses_stream
    stack.callback(nginx.stop)
    nginx.start()
    proxy = Proxy(
        tmp, nginx, core=PROXY_CORE, proxy_cmd=args.proxy_cmd, extra_args=args.extra_proxy_args
    )
    proxy.config.write_text(proxy_config(nginx))
    stack.callback(
        lambda: (
            shutil.copyfile(proxy.log, args.out / "fd-proxy.log") if proxy.log.exists() else None
        )
    )
    stack.callback(proxy.stop)
    proxy.start()
    assert proxy.proc is not None
    pid = proxy.proc.pid
    _log(
        f"nginx on :{nginx.port} (core {LOAD_CORE}), proxy pid {pid} on :{proxy.port} "
        f"(core {PROXY_CORE})"
    )
    bodies = tmp / "bodies"
    bodies.mkdir()
    targets: dict[str, tuple[Target, Target]] = {}
    results: dict[str, DoorResult] = {}
    for door in args.doors:
        upstream_model = OPENAI_MODEL if door.group == OPENAI_GROUP else ANTHROPIC_MODEL
        proxy_t = make_target(
            bodies,
            f"{door.name}-proxy",
            proxy.port,
            door.path,
            ap.request(door.wire, door.group),
            client_headers(door.wire, payloads.MASTER_KEY),
        )
        direct_t = make_target(
            bodies,
            f"{door.name}-direct",
            nginx.port,
            door.upstream_path,
            ap.request(door.upstream_wire, upstream_model),
            client_headers(door.upstream_wire, payloads.UPSTREAM_KEY),
        )
        targets[door.name] = (proxy_t, direct_t)
        res = DoorResult(door)
        res.checks = check(door, proxy_t, direct_t, proxy.port, nginx.port)
        if not door.passthrough and res.checks.get("passed_through"):
            raise RuntimeError(f"{door.name}: the answer was passed through, not translated")
        res.checks["request_bytes"] = len(proxy_t.body_file.read_bytes())
        results[door.name] = res
        _log(f"{door.name}: {res.checks}")
    for door in args.doors:  # warm-up, thrown away
        run_wrk(targets[door.name][0], args.connections, 2, None)
    assert nginx.proc is not None
    load0, busy0 = _loadavg(), _busy()
    ours0 = procs.tree_cpu_seconds(pid) + procs.tree_cpu_seconds(nginx.proc.pid) + _self_cpu()
    started = time.time()
    for r in range(args.rounds):
        for name, rnd in measure_round(args.doors, targets, pid, args, r).items():
            results[name].rounds.append(rnd)
    wall = time.time() - started
    busy1 = _busy()
    ours = (
        procs.tree_cpu_seconds(pid) + procs.tree_cpu_seconds(nginx.proc.pid) + _self_cpu() - ours0
    )
    machine = busy1[0] - busy0[0]
    load1 = _loadavg()
    md_table, target_lines = table(results, args)
    noise = (
        f"1-min load average {load0:.2f} before the rounds, {load1:.2f} after; over the "
        f"{wall:.0f} s of rounds the two cores were busy {machine:.0f} CPU-s of "
        f"{busy1[1] - busy0[1]:.0f}; the bench (proxy, nginx, wrk, TTFB client) used {ours:.0f}, "
        f"other work on the machine {machine - ours:.0f} CPU-s, i.e. "
        f"{(machine - ours) / wall:.2f} cores on average. "
        "The CPU figures come from /proc of the proxy process (core 0, which other work can "
        "share), TTFB from a client on core 1."
    )
    head = [
        f"# Front doors, agent-sized streamed request ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"{args.rounds} rounds; in each, per path (in an order rotated every round): wrk -t1 "
        f"-c{args.connections} for {args.duration} s direct, then through the proxy; then "
        f"{args.ttfb_requests} sequential request pairs per path (direct and proxy alternating) "
        f"for TTFB, the paths interleaved in blocks of {args.ttfb_block}. Medians over rounds; "
        "the differences vs chat are medians of the per-round differences.",
        "Request bodies: "
        + ", ".join(f"{n} {r.checks['request_bytes']:,} B" for n, r in results.items())
        + ".",
        "",
        md_table,
        "",
        "Targets:",
        "",
        *target_lines,
        "",
        f"Noise: {noise}",
        "",
    ]
    report = "\n".join(head)
    missed = [
        n
        for n, res in results.items()
        if any(line.endswith("MISSED") and res.door.label in line for line in target_lines)
    ]
    if args.profile:
        names = ["chat", *missed] if args.profile == "missed" else args.profile.split(",")
        names = [n for n in dict.fromkeys(names) if n in targets]
        if args.profile == "missed" and len(names) <= 1:
            names = []
            report += "\nNo target was missed: no profile taken.\n"
        profiles = {n: profile(BY_NAME[n], targets[n][0], pid, args) for n in names}
        if profiles:
            report += "\n" + profile_report(profiles, args.root) + "\n"
        (args.out / "front_doors_profile.json").write_text(json.dumps(profiles, indent=1))
    data = {
        n: {"checks": r.checks, "rounds": [vars(x) for x in r.rounds]} for n, r in results.items()
    }
    (args.out / "front_doors.json").write_text(json.dumps(data, indent=1))
    return report


def main(argv: list[str] | None = None) -> int:
    """Runs the bench; prints the report and writes bench/results/front_doors.md and .json.

    Returns:
        0 when it ran, 1 when a step failed, 130 on Ctrl-C.
    """
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    os.sched_setaffinity(0, {LOAD_CORE})  # the TTFB client shares the load core
    try:
        ensure_tools()
        with (
            tempfile.TemporaryDirectory(prefix="llmproxy-fd-") as tmp,
            contextlib.ExitStack() as stack,
        ):
            report = bench(args, Path(tmp), stack)
    except KeyboardInterrupt:
        _log("interrupted; everything started was stopped")
        return 130
    except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
        _log(f"failed: {exc}")
        return 1
    (args.out / "front_doors.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
