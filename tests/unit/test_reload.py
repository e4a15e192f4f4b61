"""Reload parts on their own: what two configs differ in (and which settings need a restart),
the key pool's successor keeping unchanged deployments' state, the `.env` layering of
`ConfigSource` (the real environment wins), and the Reloader's record of each attempt."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.config.changes import compare, keep_restart_settings
from proxy.config.loader import build_config
from proxy.config.source import ConfigSource
from proxy.config.types import Config
from proxy.errors import ConfigError, UpstreamError
from proxy.observe.reload import LiveScrubber, Reloader
from proxy.routing.keys import KeyPool
from proxy.secret import Secret
from tests.unit.conftest import FakeClock
from tests.unit.parts import openai_dep


def doc(*deps: dict[str, Any], **sections: Any) -> dict[str, Any]:
    return {"model_list": list(deps), **sections}


def config(*deps: dict[str, Any], **sections: Any) -> Config:
    return build_config(doc(*deps, **sections))


def test_compare_names_groups_and_deployments_added_removed_changed() -> None:
    old = config(openai_dep("a", "a-1"), openai_dep("b", "b-1"), openai_dep("b", "b-2"))
    new = config(
        openai_dep("a", "a-1"),
        openai_dep("b", "b-1", rpm=10),
        openai_dep("c", "c-1"),
    )
    changes = compare(old, new)
    assert changes.groups_added == ("c",)
    assert changes.groups_removed == ()
    assert changes.groups_changed == ("b",)
    assert changes.deployments_added == ("c-1",)
    assert changes.deployments_removed == ("b-2",)
    assert changes.deployments_changed == ("b-1",)
    assert changes.restart_needed == ()
    assert changes.summary() == (
        "groups added: c; groups changed: b; deployments added: c-1; "
        "deployments removed: b-2; deployments changed: b-1"
    )
    assert compare(old, old).empty and compare(old, old).summary() == "nothing changed"


def test_a_changed_key_is_a_changed_deployment() -> None:
    old = config(openai_dep("a", "a-1"))
    new = config(openai_dep("a", "a-1", api_key="sk-another-key-0123456789"))
    assert compare(old, new).deployments_changed == ("a-1",)


def test_settings_read_at_start_need_a_restart_and_keep_their_old_values() -> None:
    old = config(openai_dep("a", "a-1"), general_settings={"master_key": "sk-old-0123456789"})
    new = config(
        openai_dep("a", "a-1"),
        router_settings={"redis_host": "10.0.0.1", "num_retries": 5},
        general_settings={"master_key": "sk-new-0123456789", "allowed_hosts": ["x.example"]},
        litellm_settings={"cache": True},
    )
    changes = compare(old, new)
    assert set(changes.restart_needed) == {
        "router_settings.redis_host",
        "general_settings.master_key",
        "general_settings.allowed_hosts",
        "litellm_settings.cache",
    }
    assert "router_settings" in changes.settings_changed
    kept = keep_restart_settings(old, new)
    assert kept.master_key == Secret("sk-old-0123456789")
    assert kept.router.redis_host is None and kept.allowed_hosts == ()
    assert kept.cache is None
    assert kept.num_retries == 5  # a live setting takes the new value


def test_the_successor_pool_keeps_the_state_of_unchanged_deployments(clock: FakeClock) -> None:
    old_cfg = config(openai_dep("a", "a-1"), openai_dep("a", "a-2"), openai_dep("b", "b-1"))
    pool = KeyPool(old_cfg.deployments, old_cfg.router, clock=clock, wall=clock.wall)
    kept = pool.states["a-1"]
    pool.begin(kept)  # in flight across the reload
    err = UpstreamError(
        "slow down", provider="openai", key_id="x", status=429, retryable=True, retry_after=30
    )
    pool.fail(pool.states["a-2"], err)
    assert pool.sessions is not None

    new_cfg = config(
        openai_dep("a", "a-1"),
        openai_dep("a", "a-2", api_key="sk-rotated-0123456789abcdef"),
        openai_dep("c", "c-1"),
    )
    new = pool.successor(new_cfg.deployments, new_cfg.router)
    assert new.states["a-1"] is kept and new.states["a-1"].in_flight == 1
    assert new.states["a-2"] is not pool.states["a-2"]  # a new key: its cooldown does not apply
    assert new.health(new.states["a-2"]) == "ok"
    assert set(new.states) == {"a-1", "a-2", "c-1"}
    assert new.sessions is pool.sessions
    pool.release(kept)  # the old request finishes on the old pool: the shared state counts it
    assert new.states["a-1"].in_flight == 0
    assert [d["id"] for d in new.snapshot()] == ["a-1", "a-2", "c-1"]


def test_the_successor_keeps_a_cooldown_of_an_unchanged_deployment(clock: FakeClock) -> None:
    cfg = config(openai_dep("a", "a-1"))
    pool = KeyPool(cfg.deployments, cfg.router, clock=clock, wall=clock.wall)
    err = UpstreamError(
        "slow down", provider="openai", key_id="x", status=429, retryable=True, retry_after=30
    )
    pool.fail(pool.states["a-1"], err)
    new = pool.successor(cfg.deployments, cfg.router)
    assert new.health(new.states["a-1"]) == "cooling_down"
    assert new.choose(list(cfg.deployments)) is None


def write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data))


def test_env_layering_real_environment_wins_and_old_dotenv_values_change(tmp_path) -> None:
    conf = tmp_path / "config.yaml"
    write(conf, doc(openai_dep("a", "a-1")))
    env = tmp_path / ".env"
    env.write_text("FROM_ENV=one\nGONE=soon\nREAL=dotenv\n")
    environ = {"REAL": "process"}
    source = ConfigSource(conf, environ=environ)
    source.load()
    assert environ == {"REAL": "process", "FROM_ENV": "one", "GONE": "soon"}
    assert source.env_path == env

    env.write_text("FROM_ENV=two\nREAL=dotenv2\nNEW=x\n")
    source.reload()
    assert environ == {"REAL": "process", "FROM_ENV": "two", "NEW": "x"}


def test_a_failed_reload_leaves_the_environment_as_it_was(tmp_path) -> None:
    conf = tmp_path / "config.yaml"
    write(conf, doc(openai_dep("a", "a-1")))
    env = tmp_path / ".env"
    env.write_text("FROM_ENV=one\n")
    environ: dict[str, str] = {}
    source = ConfigSource(conf, environ=environ)
    source.load()
    env.write_text("FROM_ENV=two\nMORE=y\n")
    conf.write_text("model_list: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        source.reload()
    assert environ == {"FROM_ENV": "one"}


def test_the_watched_files_include_includes_and_the_env(tmp_path) -> None:
    conf = tmp_path / "config.yaml"
    part = tmp_path / "models.yaml"
    write(part, doc(openai_dep("a", "a-1")))
    write(conf, {"include": ["models.yaml"]})
    source = ConfigSource(conf, environ={})
    source.load()
    assert source.watched()[:2] == (conf, part)
    assert tmp_path / ".env" in source.watched()
    before = source.stamp()
    assert before[-1] is None or before[-1][0] != str(tmp_path / ".env")
    (tmp_path / ".env").write_text("X=1\n")
    assert source.stamp() != before
    write(part, doc(openai_dep("a", "a-1"), openai_dep("b", "b-1")))
    assert [d.id for d in source.reload().deployments] == ["a-1", "b-1"]


def test_the_reloader_records_each_attempt_and_serializes_them(tmp_path, clock) -> None:
    conf = tmp_path / "config.yaml"
    write(conf, doc(openai_dep("a", "a-1")))
    serving = [config(openai_dep("a", "a-1"))]

    async def apply(new: Config) -> Any:
        changes = compare(serving[-1], new)
        serving.append(new)
        return changes

    secret = "sk-leaked-in-an-error-0123"
    scrub = LiveScrubber([Secret(secret)]).text
    reloader = Reloader(ConfigSource(conf, environ={}), apply, scrub=scrub, wall=clock.wall)

    async def run() -> None:
        write(conf, doc(openai_dep("a", "a-1"), openai_dep("b", "b-1")))
        first, second = await asyncio.gather(reloader.reload("one"), reloader.reload("two"))
        assert first.ok and first.changes is not None
        assert first.changes.groups_added == ("b",)
        assert second.ok and second.changes is not None and second.changes.empty
        conf.write_text(f"model_list: [{secret}\n")
        failed = await reloader.reload("SIGHUP")
        assert not failed.ok and failed.error is not None and "invalid YAML" in failed.error
        assert secret not in failed.error
        status = reloader.status()
        assert (status["number"], status["ok"], status["trigger"]) == (3, False, "SIGHUP")
        assert status["at"] == clock.wall()

    asyncio.run(run())
    assert len(serving) == 3  # the failed one applied nothing


def test_the_live_scrubber_learns_new_keys_and_keeps_old_ones() -> None:
    scrubber = LiveScrubber([Secret("sk-old-key-0123456789")])
    scrubber.add([Secret("sk-new-key-9876543210")])
    text = scrubber.text("sk-old-key-0123456789 sk-new-key-9876543210")
    assert text == "…6789 …3210"


def test_a_config_that_is_not_utf8_is_a_failed_reload_not_a_crash(tmp_path) -> None:
    conf = tmp_path / "config.yaml"
    write(conf, doc(openai_dep("a", "a-1")))
    environ: dict[str, str] = {}
    (tmp_path / ".env").write_text("FROM_ENV=one\n")

    async def apply(new: Config) -> Any:
        raise AssertionError("an unreadable file must not be applied")

    reloader = Reloader(ConfigSource(conf, environ=environ), apply)
    conf.write_bytes(b"model_list: [\xff\xfe]\n")
    outcome = asyncio.run(reloader.reload("POST /llmproxy/reload"))
    assert not outcome.ok and outcome.error is not None
    assert outcome.error.startswith("UnicodeDecodeError")
    assert environ == {}  # the .env it read is not applied either
