"""`llmproxy-tui --check` shows the Redis and database settings, passwords redacted."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.e2e.test_cli import run_check


def test_check_shows_redis_and_database(tmp_path: Path) -> None:
    conf = tmp_path / "c.yaml"
    conf.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "g", "litellm_params": {"model": "mock/x",
                        "mock_response": "hi"}}],
        "router_settings": {"redis_host": "10.0.0.5", "redis_port": 6380,
                            "redis_password": "redis-secret-pw", "redis_namespace": "team"},
        "litellm_settings": {"cache": True, "cache_params": {"type": "redis", "ttl": 60,
                             "host": "10.0.0.6", "password": "cache-secret-pw"}},
        "general_settings": {"database_url": "postgresql://llm:db-secret-pw@db.local:5432/usage"},
    }))  # fmt: skip
    result = run_check("--config", str(conf), "--check")
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert "redis (shared cooldowns, rpm/tpm, in-flight, latency): 10.0.0.5:6380" in out
    assert "(password set), namespace team" in out
    assert "cache: redis, ttl 60s at 10.0.0.6:6379 (password set), namespace llmproxy:cache" in out
    assert "usage database: postgresql://llm:***@db.local:5432/usage (postgresql, shared)" in out
    for secret in ("redis-secret-pw", "cache-secret-pw", "db-secret-pw"):
        assert secret not in out + result.stderr


def test_check_redacts_a_redis_url(tmp_path: Path) -> None:
    conf = tmp_path / "c.yaml"
    conf.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "g", "litellm_params": {"model": "mock/x"}}],
        "router_settings": {"redis_url": "redis://:url-secret-pw@127.0.0.1:6379/2"},
    }))  # fmt: skip
    result = run_check("--config", str(conf), "--check")
    assert "redis://:***@127.0.0.1:6379/2" in result.stdout
    assert "url-secret-pw" not in result.stdout + result.stderr
