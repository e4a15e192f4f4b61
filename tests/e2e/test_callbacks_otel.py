"""`litellm_settings` callbacks through the real proxy: `otel` and `langfuse` export one span per
finished request over OTLP/HTTP to a fake collector on loopback (GenAI attribute names, no
prompt text), `prometheus` is served by /metrics, other names are one warning each, and a
collector that hangs never holds up an answer."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from proxy.config.loader import build_config
from tests.conftest import openai_deployment
from tests.fakes.otlp import FakeCollector
from tests.fakes.upstream import error, reply

KEY = "sk-upstream-otel-7777hhhh"
PROMPT = "PROMPT-TEXT-never-exported-4242"
ANSWER = "ANSWER-TEXT-never-exported-2424"
MSG = [{"role": "user", "content": PROMPT}]
USAGE = {"prompt_tokens": 1000, "completion_tokens": 500}


@pytest.fixture
def collector() -> Iterator[FakeCollector]:
    found = FakeCollector().start()
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture(autouse=True)
def fast_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Export every 50 ms instead of the SDK's 5 s, so a test waits little; no other OTEL_*
    or LANGFUSE_* variable from the outside reaches the proxy."""
    for name in list(os.environ):
        if name.startswith(("OTEL_", "LANGFUSE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")


def config(fake, **settings) -> dict:
    return {
        "model_list": [openai_deployment("gpt-4", fake, KEY, id="gpt4-a")],
        "router_settings": {"num_retries": 0},
        "litellm_settings": settings,
    }


def ask(proxy, *, stream: bool = False) -> httpx.Response:
    with proxy.client() as c:
        body = {"model": "gpt-4", "messages": MSG, "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        return c.post("/v1/chat/completions", json=body)


def test_otel_spans_for_plain_stream_and_failure(fake, collector, start_proxy, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team=blue%20team,api-key=k-123")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "proxy-under-test")
    proxy = start_proxy(config(fake, callbacks=["otel"]))
    fake.set_default(reply(ANSWER, usage=USAGE))
    assert ask(proxy).status_code == 200
    streamed = ask(proxy, stream=True)
    assert streamed.status_code == 200 and ANSWER[:8] in streamed.text
    fake.script(error(500, f"upstream broke on {PROMPT}"))
    failed = ask(proxy)
    assert failed.status_code >= 500

    spans = collector.wait_spans(3)
    assert {e.path for e in collector.exports} == {"/v1/traces"}
    headers = collector.exports[0].headers
    assert headers["x-team"] == "blue team" and headers["api-key"] == "k-123"
    assert headers["content-type"] == "application/x-protobuf"
    by_stream = {(s.attributes["llmproxy.stream"], s.status_code) for s in spans}
    assert len(by_stream) == 3, by_stream
    plain, stream_span = (
        next(s for s in spans if s.attributes["llmproxy.stream"] is flag and s.status_code != 2)
        for flag in (False, True)
    )
    bad = next(s for s in spans if s.status_code == 2)  # STATUS_CODE_ERROR
    for span in (plain, stream_span):
        a = span.attributes
        assert span.name == "chat gpt-4"
        assert span.kind == 3  # SPAN_KIND_CLIENT
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.provider.name"] == a["gen_ai.system"] == "openai"
        assert a["gen_ai.request.model"] == "gpt-4"
        assert a["gen_ai.response.model"] == "gpt-4o"
        assert a["gen_ai.usage.input_tokens"] == 1000
        assert a["gen_ai.usage.output_tokens"] == 500
        assert a["http.response.status_code"] == 200
        assert a["llmproxy.deployment"] == "gpt4-a"
        assert a["llmproxy.cost_usd"] > 0
        assert "error.type" not in a
        assert span.resource["service.name"] == "proxy-under-test"
        assert span.end_ns > span.start_ns
    assert stream_span.attributes["llmproxy.ttft_ms"] >= 0
    assert bad.attributes["http.response.status_code"] == failed.status_code
    assert bad.attributes["error.type"] == str(failed.status_code)
    assert bad.attributes["llmproxy.deployment"] == "gpt4-a"
    for export in collector.exports:
        assert PROMPT.encode() not in export.body and ANSWER.encode() not in export.body
        assert KEY.encode() not in export.body


def test_langfuse_gets_basic_auth_and_success_only(fake, collector, start_proxy, monkeypatch):
    monkeypatch.setenv("LANGFUSE_HOST", collector.url + "/")
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-public")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-secret")
    proxy = start_proxy(config(fake, success_callback=["langfuse"]))
    fake.script(error(500, "broken"))
    assert ask(proxy).status_code >= 500  # a failure: success_callback does not report it
    fake.set_default(reply(ANSWER, usage=USAGE))
    assert ask(proxy).status_code == 200
    [span] = collector.wait_spans(1)
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["langfuse.observation.type"] == "generation"
    assert span.attributes["gen_ai.usage.cost"] == span.attributes["llmproxy.cost_usd"] > 0
    export = collector.exports[0]
    assert export.path == "/api/public/otel/v1/traces"
    token = base64.b64encode(b"pk-lf-public:sk-lf-secret").decode()
    assert export.headers["authorization"] == f"Basic {token}"


@pytest.fixture
def held() -> Iterator[FakeCollector]:
    """A collector that holds every export until released (stopped after the proxy)."""
    found = FakeCollector(hang=True).start()
    try:
        yield found
    finally:
        found.stop()


def test_hanging_collector_never_delays_answers(fake, held, start_proxy, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", held.url)
    proxy = start_proxy(config(fake, success_callback=["otel"], failure_callback="otel"))
    fake.set_default(reply(ANSWER, usage=USAGE))
    assert ask(proxy).status_code == 200
    held.wait_hanging(1)  # the exporter's thread is now stuck inside one export
    for stream in (False, True, False, True):
        assert ask(proxy, stream=stream).status_code == 200
    assert held.hanging >= 1 and proxy.state()["server"]["requests_total"] == 5
    held.release()
    assert len(held.wait_spans(5)) >= 5  # queued meanwhile, none lost


def test_callback_names_warn_once_and_prometheus_is_served(tmp_path, collector, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    doc = {
        "model_list": [{"model_name": "m", "litellm_params": {"model": "mock/m"}}],
        "litellm_settings": {
            "success_callback": ["prometheus", "otel", "datadog"],
            "failure_callback": "custom_callbacks.proxy_handler_instance",
            "callbacks": ["prometheus"],
        },
    }
    cfg = build_config(doc)
    about = [w for w in cfg.warnings if "callback" in w]
    assert about == [
        "litellm_settings.success_callback: 'datadog' is not served (only otel, langfuse and "
        "prometheus are), ignored",
        "litellm_settings.failure_callback: 'custom_callbacks.proxy_handler_instance' is not "
        "served (only otel, langfuse and prometheus are), ignored",
    ]
    [sink] = cfg.callbacks
    assert (sink.name, sink.endpoint, sink.on_success, sink.on_failure) == (
        "otel",
        collector.url + "/v1/traces",
        True,
        False,
    )
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = run_check(path)
    assert out.returncode == 0, out.stderr
    assert (
        f"callback otel: a span per successful request -> {collector.url}/v1/traces" in out.stdout
    )
    assert (
        "callback prometheus (litellm_settings.success_callback): served at GET /metrics"
        in out.stdout
    )
    assert "datadog" in out.stdout


def test_otel_without_the_packages_exits_2(tmp_path, monkeypatch):
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-public")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-secret")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"litellm_settings": {"callbacks": ["langfuse"]}}))
    # The interpreter as if opentelemetry-sdk were not installed (find_spec returns None).
    hide = "import sys; sys.modules['opentelemetry.sdk'] = None; "
    out = run_check(path, prelude=hide)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "litellm_settings.callbacks: langfuse" in out.stderr
    assert "pip install 'llmproxy-tui[otel]'" in out.stderr
    assert "Traceback" not in out.stderr
    monkeypatch.delenv("LANGFUSE_SECRET_KEY")  # langfuse off (a warning): no package needed
    out = run_check(path, prelude=hide)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "LANGFUSE_SECRET_KEY is not set" in out.stdout


def test_no_callback_loads_no_opentelemetry(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"litellm_settings": {"success_callback": ["prometheus"]}}))
    code = (
        "import sys; from proxy.config.loader import load_config; from proxy.runtime import "
        f"Runtime; Runtime(load_config({str(path)!r})); "
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk', "
        "'opentelemetry.exporter', 'proxy.observe.otel'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def run_check(path: Path, prelude: str = "") -> subprocess.CompletedProcess[str]:
    code = (
        prelude + "from tui.cli import main; sys.exit(main(['--check', '--config', sys.argv[1]]))"
    )
    if "import sys" not in prelude:
        code = "import sys; " + code
    return subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=30
    )
