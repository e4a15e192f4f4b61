"""Stopping the real command: SIGTERM/SIGINT finish in-flight requests, refuse new ones, flush
usage and exit 0; a restart on the same port works at once."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import yaml

from tests.conftest import openai_deployment
from tests.fakes.upstream import reply

KEY = "sk-upstream-lifecycle-0123456789"
BODY = {"model": "gpt-4", "messages": [{"role": "user", "content": "slow please"}]}


def config(fake, tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"model_list": [openai_deployment("gpt-4", fake, KEY)]}))
    return path


def streamed_text(sse: str) -> str:
    docs = [
        json.loads(line[6:])
        for line in sse.splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]
    return "".join(d["choices"][0]["delta"].get("content") or "" for d in docs if d["choices"])


def wait_until_draining(url: str, timeout: float = 10) -> None:
    """Returns once the signal took effect: readiness says 503 or connections are refused."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health/readiness", timeout=2).status_code == 503:
                return
        except httpx.TransportError:
            return
        time.sleep(0.05)
    raise AssertionError("the proxy never started draining after SIGTERM")


def test_sigterm_finishes_in_flight_refuses_new_and_restarts(fake, run_cli, tmp_path) -> None:
    conf = config(fake, tmp_path)
    handle = run_cli("--config", str(conf))
    fake.script(reply("finally done", delay=1.5), reply("finally done", delay=1.5))
    results: dict[str, httpx.Response] = {}

    def slow(name: str, stream: bool) -> None:
        body = {**BODY, "stream": stream}
        with httpx.Client(timeout=30) as c:
            results[name] = c.post(handle.url + "/v1/chat/completions", json=body)

    workers = [
        threading.Thread(target=slow, args=("plain", False)),
        threading.Thread(target=slow, args=("stream", True)),
    ]
    for w in workers:
        w.start()
    fake.wait_requests(2, timeout=10)
    handle.proc.send_signal(signal.SIGTERM)
    wait_until_draining(handle.url)
    try:
        late = httpx.post(handle.url + "/v1/chat/completions", json=BODY, timeout=5)
    except httpx.TransportError:
        pass  # refused: fine
    else:
        assert late.status_code == 503
        assert late.json()["error"]["message"]
    for w in workers:
        w.join(30)
    assert results["plain"].status_code == 200
    assert results["plain"].json()["choices"][0]["message"]["content"] == "finally done"
    assert results["stream"].status_code == 200
    assert streamed_text(results["stream"].text) == "finally done"
    assert results["stream"].text.rstrip().endswith("data: [DONE]")
    assert handle.proc.wait(30) == 0
    assert "Traceback" not in handle.output()
    # usage was flushed before exit
    db = tmp_path / "cli0.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from requests").fetchone()[0] >= 2
    # and the port is free again at once
    again = run_cli("--config", str(conf), port=handle.port)
    assert httpx.post(again.url + "/v1/chat/completions", json=BODY, timeout=10).status_code == 200
    assert again.terminate(signal.SIGINT) == 0


def test_sigint_is_a_clean_stop(fake, run_cli, tmp_path) -> None:
    handle = run_cli("--config", str(config(fake, tmp_path)))
    assert httpx.get(handle.url + "/health").status_code == 200
    assert handle.terminate(signal.SIGINT) == 0
    assert "Traceback" not in handle.output()


def test_idle_keepalive_and_event_stream_do_not_block_shutdown(fake, run_cli, tmp_path) -> None:
    handle = run_cli("--config", str(config(fake, tmp_path)))
    client = httpx.Client(timeout=10)
    try:
        assert client.get(handle.url + "/health").status_code == 200  # an idle keep-alive
        with httpx.stream("GET", handle.url + "/llmproxy/events", timeout=10) as events:
            next(events.iter_bytes())
            started = time.monotonic()
            handle.proc.send_signal(signal.SIGTERM)
            assert handle.proc.wait(15) == 0
        assert time.monotonic() - started < 10
    finally:
        client.close()
