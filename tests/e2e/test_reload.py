"""Config reload through the real server: edit the config under a running proxy (in-process and
a real `--no-tui` subprocess) and check each outcome over HTTP. A group added is served, one
removed is 404, a changed key reaches the upstream, a broken file keeps the old config serving
and says why (the answer, the log, /llmproxy/state); a stream in flight completes; cooldowns and
the cache survive; SIGHUP, the file watch and a `.env` change reload; settings read at start are
named as needing a restart."""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import CliProxy, Proxy, openai_deployment
from tests.fakes.upstream import FakeUpstream, rate_limit, reply

MASTER = "sk-master-reload-0123456789abcdef"
KEY_A = "sk-upstream-a-0123456789abcdef"
KEY_A2 = "sk-upstream-a2-0123456789abcdef"
KEY_B = "sk-upstream-b-0123456789abcdef"
KEY_C = "sk-upstream-c-0123456789abcdef"


def until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def chat(client: httpx.Client, model: str, text: str = "hi") -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return client.post("/v1/chat/completions", json=body)


def base_doc(fake: FakeUpstream) -> dict[str, Any]:
    return {
        "model_list": [
            openai_deployment("a", fake, KEY_A, id="a-1"),
            openai_deployment("b", fake, KEY_B, id="b-1"),
        ],
        "router_settings": {"num_retries": 0, "cooldown_time": 60},
        "general_settings": {"master_key": MASTER},
    }


def start(start_proxy: Callable[..., Proxy], doc: dict[str, Any]) -> Proxy:
    """An in-process proxy whose file watch is off, so each reload here is the one asked."""
    proxy = start_proxy(doc)
    proxy.master_key = MASTER
    proxy.server.submit(proxy.runtime.reloader.stop()).result(10)
    return proxy


def config_path(proxy: Proxy) -> Path:
    path = proxy.runtime.config.path
    assert path is not None
    return path


def rewrite(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(doc))


def reload(proxy: Proxy) -> httpx.Response:
    with proxy.client() as c:
        return c.post("/llmproxy/reload")


def test_reload_adds_a_group_removes_one_and_changes_a_key(start_proxy, fake) -> None:
    doc = base_doc(fake)
    proxy = start(start_proxy, doc)
    with proxy.client() as c:
        assert chat(c, "a").status_code == 200
        assert chat(c, "c").status_code == 404
    assert fake.calls(path="/v1/chat/completions")[-1].key == KEY_A

    doc["model_list"] = [
        openai_deployment("a", fake, KEY_A2, id="a-1"),
        openai_deployment("c", fake, KEY_C, id="c-1"),
    ]
    rewrite(config_path(proxy), doc)
    answer = reload(proxy)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["ok"] is True and result["trigger"] == "POST /llmproxy/reload"
    changes = result["changes"]
    assert changes["groups_added"] == ["c"] and changes["groups_removed"] == ["b"]
    assert changes["deployments_changed"] == ["a-1"]
    assert changes["deployments_added"] == ["c-1"] and changes["deployments_removed"] == ["b-1"]
    assert changes["restart_needed"] == []
    assert KEY_A2 not in answer.text and KEY_C not in answer.text

    with proxy.client() as c:
        assert chat(c, "c").status_code == 200
        assert fake.calls(path="/v1/chat/completions")[-1].key == KEY_C
        gone = chat(c, "b")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "model_not_found"
        assert chat(c, "a").status_code == 200
        assert fake.calls(path="/v1/chat/completions")[-1].key == KEY_A2
        assert c.get("/v1/models/c").json()["id"] == "c"  # the model lookup follows too
        assert c.get("/v1/models/b").status_code == 404
    state = proxy.state()
    assert {d["id"] for d in state["deployments"]} == {"a-1", "c-1"}
    assert {g["name"] for g in state["groups"]} == {"a", "c"}
    assert state["reload"]["ok"] is True and state["reload"]["changes"]["groups_added"] == ["c"]
    assert KEY_A2 not in str(state) and KEY_C not in str(state)


BROKEN = {
    "yaml": ("model_list: [\n  - {model_name: a\n", "invalid YAML"),
    "type": (None, "rpm: expected an integer"),
    "master_key": (None, "RELOAD_TEST_UNSET_MASTER"),
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_an_invalid_file_keeps_the_old_config_and_says_why(
    start_proxy, fake, caplog, monkeypatch, kind
) -> None:
    monkeypatch.delenv("RELOAD_TEST_UNSET_MASTER", raising=False)
    doc = base_doc(fake)
    proxy = start(start_proxy, doc)
    text, why = BROKEN[kind]
    if kind == "type":
        doc["model_list"][0]["litellm_params"]["rpm"] = "fast"
    if kind == "master_key":
        doc["general_settings"]["master_key"] = "os.environ/RELOAD_TEST_UNSET_MASTER"
    doc["model_list"].append(openai_deployment("new", fake, KEY_C, id="new-1"))
    path = config_path(proxy)
    if text is not None:
        path.write_text(text)
    else:
        rewrite(path, doc)

    with caplog.at_level(logging.ERROR, logger="llmproxy"):
        answer = reload(proxy)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid_config" and why in error["message"]
    assert "old one keeps serving" in error["message"]
    logged = [r.getMessage() for r in caplog.records if "config reload" in r.getMessage()]
    assert logged and why in logged[-1] and "old config keeps serving" in logged[-1]

    with proxy.client() as c:
        assert chat(c, "a").status_code == 200  # the old config serves on
        assert chat(c, "b").status_code == 200
        assert chat(c, "new").status_code == 404
    section = proxy.state()["reload"]
    assert section["ok"] is False and why in section["error"] and section["at"] > 0
    assert section["changes"] is None


def test_a_stream_in_flight_completes_across_a_reload_that_removes_its_group(
    start_proxy, fake
) -> None:
    doc = base_doc(fake)
    proxy = start(start_proxy, doc)
    words = " ".join(f"w{i}" for i in range(40))
    fake.script(reply(words, chunk_delay=0.02), key=KEY_B)
    body = {"model": "b", "messages": [{"role": "user", "content": "go"}], "stream": True}
    doc["model_list"] = [openai_deployment("a", fake, KEY_A2, id="a-1")]
    with proxy.client() as c, c.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        lines = r.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        assert "[DONE]" not in first
        rewrite(config_path(proxy), doc)
        assert reload(proxy).json()["changes"]["groups_removed"] == ["b"]
        rest = [line for line in lines if line.startswith("data: ")]
    assert rest[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in [first, *rest[:-1]]]
    text = "".join(
        (chunk["choices"][0]["delta"].get("content") or "") for chunk in chunks if chunk["choices"]
    )
    assert text == words
    with proxy.client() as c:
        assert chat(c, "b").status_code == 404  # new requests see the new config


def test_cooldown_and_cache_survive_a_reload_that_does_not_touch_them(start_proxy, fake) -> None:
    doc = base_doc(fake)
    doc["litellm_settings"] = {"cache": True, "cache_params": {"type": "local", "ttl": 600}}
    proxy = start(start_proxy, doc)
    fake.script(rate_limit(retry_after=60), key=KEY_B)
    with proxy.client() as c:
        assert chat(c, "b").status_code == 429
        first = chat(c, "a", "cache me")
        assert first.headers["x-llmproxy-cache"] == "miss"
    cooled = proxy.deployment("b-1")
    assert cooled["health"] == "cooling_down"
    calls = len(fake.requests)

    doc["model_list"].append(openai_deployment("c", fake, KEY_C, id="c-1"))
    rewrite(config_path(proxy), doc)
    assert reload(proxy).json()["changes"]["groups_added"] == ["c"]

    after = proxy.deployment("b-1")
    assert after["health"] == "cooling_down"
    assert after["cooldown_until"] == pytest.approx(cooled["cooldown_until"], abs=0.5)
    assert after["requests"] == cooled["requests"]
    with proxy.client() as c:
        again = chat(c, "a", "cache me")
        assert again.headers["x-llmproxy-cache"] == "hit"
        assert again.json()["choices"][0]["message"] == first.json()["choices"][0]["message"]
        assert chat(c, "b").status_code == 429  # still cooling: the upstream is not called
    assert len(fake.requests) == calls
    assert proxy.state()["cache"]["entries"] == 1


def test_settings_read_at_start_are_named_as_needing_a_restart(start_proxy, fake) -> None:
    doc = base_doc(fake)
    proxy = start(start_proxy, doc)
    doc["router_settings"].update({"redis_host": "127.0.0.1", "redis_port": 1})
    doc["general_settings"]["master_key"] = "sk-master-new-0123456789abcdef"
    doc["general_settings"]["database_url"] = "postgresql://u:p@127.0.0.1:1/db"
    doc["litellm_settings"] = {"cache": True, "cache_params": {"type": "redis", "port": 1}}
    doc["router_settings"]["num_retries"] = 1
    rewrite(config_path(proxy), doc)
    answer = reload(proxy)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert set(result["restart_needed"]) == {
        "router_settings.redis_host",
        "router_settings.redis_port",
        "general_settings.master_key",
        "general_settings.database_url",
        "litellm_settings.cache",
        "litellm_settings.cache_params",
    }
    assert "router_settings" in result["changes"]["settings_changed"]
    assert "needs a restart" in result["summary"]
    assert "sk-master-new" not in answer.text and "u:p@" not in answer.text
    state = proxy.state()  # the old master key still opens it: kept until a restart
    assert state["server"]["redis"]["configured"] is False
    assert state["cache"]["enabled"] is False
    with httpx.Client(base_url=proxy.url) as c:
        new_key = {"authorization": "Bearer sk-master-new-0123456789abcdef"}
        assert c.get("/llmproxy/state", headers=new_key).status_code == 401


# ---- the real command ----


def write_cli_config(tmp: Path, fake: FakeUpstream, groups: dict[str, str]) -> Path:
    doc = {
        "model_list": [
            openai_deployment(group, fake, key, id=f"{group}-1") for group, key in groups.items()
        ],
        "router_settings": {"num_retries": 0},
        "general_settings": {"master_key": MASTER},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def cli_state(proc: CliProxy) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {MASTER}"}
    return dict(httpx.get(proc.url + "/llmproxy/state", headers=headers, timeout=5).json())


def cli_chat(proc: CliProxy, model: str) -> httpx.Response:
    with httpx.Client(base_url=proc.url, headers={"authorization": f"Bearer {MASTER}"}) as c:
        return chat(c, model)


def test_cli_file_watch_env_change_sighup_and_a_broken_file(run_cli, fake, tmp_path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    env = conf / ".env"
    real = "RELOAD_REAL_KEY=sk-dotenv-loses-0123456789\n"
    env.write_text("RELOAD_UP_KEY=sk-from-env-one-0123456789\n" + real)
    groups = {"a": "os.environ/RELOAD_UP_KEY", "r": "os.environ/RELOAD_REAL_KEY"}
    path = write_cli_config(conf, fake, groups)
    # A variable of the real environment wins over the .env, before and after a reload.
    proc = run_cli("--config", str(path), env={"RELOAD_REAL_KEY": "sk-process-wins-0123456789"})
    assert cli_chat(proc, "a").status_code == 200
    assert fake.calls(path="/v1/chat/completions")[-1].key == "sk-from-env-one-0123456789"

    # A .env change: the file watch reloads, the new key reaches the upstream.
    env.write_text("RELOAD_UP_KEY=sk-from-env-two-0123456789\n" + real)
    until(lambda: (cli_state(proc)["reload"]["number"] or 0) >= 1)
    assert cli_state(proc)["reload"]["changes"]["deployments_changed"] == ["a-1"]
    assert cli_chat(proc, "a").status_code == 200
    assert fake.calls(path="/v1/chat/completions")[-1].key == "sk-from-env-two-0123456789"
    assert cli_chat(proc, "r").status_code == 200
    assert fake.calls(path="/v1/chat/completions")[-1].key == "sk-process-wins-0123456789"

    # A config change: the watch adds the group.
    write_cli_config(conf, fake, {**groups, "c": KEY_C})
    until(lambda: cli_chat(proc, "c").status_code == 200)
    section = cli_state(proc)["reload"]
    assert section["ok"] and section["trigger"] == "file change"
    assert str(path) in section["watching"] and str(env) in section["watching"]

    # SIGHUP re-reads with nothing changed on disk.
    before = cli_state(proc)["reload"]["number"]
    proc.proc.send_signal(signal.SIGHUP)
    section = until(lambda: (s := cli_state(proc)["reload"])["number"] > before and s)
    assert section["trigger"] == "SIGHUP" and section["ok"] is True
    assert section["summary"] == "nothing changed"

    # A broken file: the old config serves on, the log and the state say why.
    path.write_text("model_list: [\n")
    section = until(lambda: (s := cli_state(proc)["reload"])["ok"] is False and s)
    assert "invalid YAML" in section["error"]
    assert cli_chat(proc, "c").status_code == 200
    until(lambda: "config reload (file change) failed" in proc.output())
    assert "the old config keeps serving" in proc.output()
    assert "sk-from-env-two" not in proc.output()
    assert proc.terminate() == 0


def test_the_health_checks_probe_a_deployment_added_by_a_reload_at_once(start_proxy, fake) -> None:
    doc = base_doc(fake)
    doc["general_settings"].update({"background_health_checks": True, "health_check_interval": 600})
    proxy = start(start_proxy, doc)
    until(lambda: proxy.deployment("a-1")["last_probe"] == "ok")  # the round begun at start
    fake.rejected_keys.add(KEY_C)
    doc["model_list"].append(openai_deployment("c", fake, KEY_C, id="c-1"))
    rewrite(config_path(proxy), doc)
    assert reload(proxy).status_code == 200
    # Not in the next round, ten minutes away: probed at once, and its dead key cooled.
    added = until(lambda: (d := proxy.deployment("c-1"))["last_probe"] and d)
    assert added["last_probe"] == "key rejected" and added["health"] == "key_rejected"
