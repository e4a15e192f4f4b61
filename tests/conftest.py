"""Shared fixtures: the fake upstream, in-process proxies on loopback, and the real CLI.

Every fixture stops what it starts. Proxies are real servers on 127.0.0.1 free ports, driven
over HTTP (httpx or the openai SDK); nothing inside the proxy is mocked.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from proxy.config.loader import build_config
from proxy.http.server import ProxyServer
from proxy.runtime import Runtime
from tests.fakes.upstream import FakeUpstream

MASTER_KEY = "sk-master-test-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    """A fake OpenAI + Anthropic upstream on a loopback port."""
    up = FakeUpstream().start()
    try:
        yield up
    finally:
        up.stop()


@dataclass
class Proxy:
    """A running in-process proxy: real uvicorn server in its own thread and event loop."""

    server: ProxyServer
    runtime: Runtime
    thread: threading.Thread
    url: str
    master_key: str | None = None
    usage_db: Path | None = None
    clients: list[Any] = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.url + "/v1"

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.master_key}"} if self.master_key else {}

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=30, **kw)

    def openai(self, **kw: Any) -> Any:
        import openai

        client = openai.OpenAI(
            base_url=self.base, api_key=self.master_key or "none", max_retries=0, **kw
        )
        self.clients.append(client)  # closed in stop(): an open client leaks its socket
        return client

    def async_openai(self, **kw: Any) -> Any:
        import openai

        return openai.AsyncOpenAI(
            base_url=self.base, api_key=self.master_key or "none", max_retries=0, **kw
        )

    def state(self) -> dict[str, Any]:
        with self.client() as c:
            response = c.get("/llmproxy/state")
            response.raise_for_status()
            return dict(response.json())

    def deployment(self, dep_id: str) -> dict[str, Any]:
        return next(d for d in self.state()["deployments"] if d["id"] == dep_id)

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.server.stop()
        self.thread.join(timeout=30)


@pytest.fixture
def start_proxy(tmp_path: Path) -> Iterator[Callable[..., Proxy]]:
    """Returns `start(config_dict, *, master_key=None, usage_db=True) -> Proxy`."""
    started: list[Proxy] = []

    def start(
        config: dict[str, Any], *, master_key: str | None = None, usage_db: bool = True
    ) -> Proxy:
        doc = dict(config)
        if master_key:
            doc.setdefault("general_settings", {})["master_key"] = master_key
        path = tmp_path / f"config{len(started)}.yaml"
        path.write_text(yaml.safe_dump(doc))
        cfg = build_config(doc, path=path)
        db = tmp_path / f"usage{len(started)}.db" if usage_db else None
        runtime = Runtime(cfg, usage_db=db)
        server = ProxyServer(runtime, "127.0.0.1", 0)
        thread = threading.Thread(target=server.run, name="proxy", daemon=True)
        thread.start()
        if not server.started.wait(15) or server.bind_error:
            raise RuntimeError(f"proxy did not start: {server.bind_error}")
        proxy = Proxy(server, runtime, thread, f"http://127.0.0.1:{server.port}", master_key, db)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


def openai_deployment(group: str, fake: FakeUpstream, key: str, **params: Any) -> dict[str, Any]:
    """A model_list entry for an OpenAI-compatible deployment on the fake upstream."""
    dep_id = params.pop("id", None)
    entry: dict[str, Any] = {
        "model_name": group,
        "litellm_params": {
            "model": params.pop("model", "openai/gpt-4o"),
            "api_base": fake.openai_base,
            "api_key": key,
            **params,
        },
    }
    if dep_id:
        entry["model_info"] = {"id": dep_id}
    return entry


def anthropic_deployment(group: str, fake: FakeUpstream, key: str, **params: Any) -> dict[str, Any]:
    """A model_list entry for an Anthropic deployment on the fake upstream."""
    params.setdefault("model", "anthropic/claude-sonnet-4-20250514")
    entry = openai_deployment(group, fake, key, **params)
    entry["litellm_params"]["api_base"] = fake.anthropic_base
    return entry


# ---- the real command, as a subprocess ----


def cli_command() -> list[str]:
    """The installed `llmproxy-tui` script, or `python -m tui.cli` beside this interpreter."""
    script = Path(sys.executable).with_name("llmproxy-tui")
    if script.exists():
        return [str(script)]
    found = shutil.which("llmproxy-tui")
    return [found] if found else [sys.executable, "-m", "tui.cli"]


@dataclass
class CliProxy:
    proc: subprocess.Popen[bytes]
    url: str
    port: int
    log: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@pytest.fixture
def run_cli(tmp_path: Path) -> Iterator[Callable[..., CliProxy]]:
    """Returns `run(*args, env=None, wait=True) -> CliProxy` running `llmproxy-tui --no-tui`."""
    procs: list[CliProxy] = []

    def run(
        *args: str,
        env: dict[str, str] | None = None,
        wait: bool = True,
        port: int | None = None,
        cwd: Path | None = None,
    ) -> CliProxy:
        port = port or free_port()
        log = tmp_path / f"cli{len(procs)}.log"
        full_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("LLMPROXY_", "LITELLM_"))
        }
        full_env.update(env or {})
        cmd = [
            *cli_command(),
            "--no-tui",
            "--port",
            str(port),
            "--usage-db",
            str(tmp_path / f"cli{len(procs)}.db"),
            *args,
        ]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=cwd or tmp_path
            )
        handle = CliProxy(proc, f"http://127.0.0.1:{port}", port, log)
        procs.append(handle)
        if wait:
            wait_healthy(handle)
        return handle

    yield run
    for handle in procs:
        if handle.proc.poll() is None:
            handle.proc.kill()
            handle.proc.wait(10)


def wait_healthy(handle: CliProxy, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if handle.proc.poll() is not None:
            raise RuntimeError(f"llmproxy-tui exited {handle.proc.returncode}:\n{handle.output()}")
        try:
            if httpx.get(handle.url + "/health/liveness", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"llmproxy-tui did not become healthy:\n{handle.output()}")
