"""Fixtures for dashboard tests: a scripted `FakeSource` in the exact shapes of
docs/internals.md, a fixed clock, and a real in-process proxy against the mock provider."""

from __future__ import annotations

import contextlib
import copy
import os
import time
from typing import Any

import pytest

os.environ["TZ"] = "UTC"
time.tzset()

NOW = 1_750_000_000.0  # fixed clock for snapshots


def row(requests=0, tokens_in=0, tokens_out=0, cost=0.0, errors=0, cache_hits=0, p50=None):
    return {
        "requests": requests,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "cost": cost,
        "cost_unknown": 0,
        "errors": errors,
        "cache_hits": cache_hits,
        "p50_ms": p50,
        "p95_ms": p50,
    }


def deployment(dep_id, group, provider="openai", health="ok", **extra):
    dep = {
        "id": dep_id,
        "group": group,
        "provider": provider,
        "model": group,
        "api_base": "https://api.openai.com/v1",
        "key": "…9f2a",
        "health": health,
        "health_reason": None,
        "cooldown_until": None,
        "cooldown_remaining_s": None,
        "in_flight": 0,
        "rpm_used": 12,
        "rpm_limit": 60,
        "tpm_used": 3400,
        "tpm_limit": 100_000,
        "limit_frees_at": None,
        "latency_p50_ms": 420.0,
        "requests": 40,
        "errors": 1,
        "fails_this_minute": 0,
        "last_error": None,
        "last_error_at": None,
        "last_probe": None,
        "last_probe_at": None,
        "last_probe_ok": None,
        "weight": 1.0,
        "order": 1,
        "sessions": 0,
        "budget": None,
        "budget_spend": None,
        "budget_reset_at": None,
        "budget_scope": None,
    }
    dep.update(extra)
    return dep


def finished(req_id, group="gpt-4o", dep="gpt-4o-1", status=200, at=NOW - 30, **extra):
    event = {
        "type": "request_finished",
        "id": req_id,
        "time": at,
        "group": group,
        "deployment": dep,
        "provider": "openai",
        "status": status,
        "latency_ms": 812.0,
        "ttft_ms": 240.0,
        "prompt_tokens": 25,
        "completion_tokens": 120,
        "cost": 0.00125,
        "cache": "miss",
        "attempts": 1,
        "fallback": None,
        "stream": True,
        "kind": "chat",
        "error": None,
        "cost_saved": None,
        "tokens_estimated": False,
        "cached_tokens": 0,
        "attempt_log": [
            {
                "deployment": dep,
                "group": group,
                "status": status,
                "reason": "ok",
                "latency_ms": 812.0,
            }
        ],
        "preview": "Hello! How can I help you today?",
        "front_door": "chat",
        "client": "openai-python",
        "session": None,
        "key_alias": None,
        "finish": "stop",
        "params": {},
    }
    event.update(extra)
    return event


CLAUDE_SESSION = "3f2a9c1d-7b4e-4f0a-9d2c-5e8b1a6f0c42"
CODEX_SESSION = "01a2334a-93bd-7c82-8588-5673ba24b07e"


def recent() -> list[dict[str, Any]]:
    """Three finished requests, one through each API."""
    return [
        finished("req-0", at=NOW - 60),
        finished(
            "req-1",
            at=NOW - 59,
            group="claude",
            dep="claude-1",
            provider="anthropic",
            front_door="messages",
            client="Claude Code",
            session=CLAUDE_SESSION,
        ),
        finished(
            "req-2",
            at=NOW - 58,
            front_door="responses",
            client="Codex",
            session=CODEX_SESSION,
        ),
    ]


def state() -> dict[str, Any]:
    """A state document as `GET /llmproxy/state` returns it."""
    deps = [
        deployment("gpt-4o-1", "gpt-4o"),
        deployment(
            "gpt-4o-2",
            "gpt-4o",
            health="cooling_down",
            cooldown_until=NOW + 42,
            cooldown_remaining_s=42.0,
            last_error="429 rate limited (retry after 42s)",
            key="…k2b7",
            rpm_used=60,
        ),
        deployment(
            "claude-1",
            "claude",
            provider="anthropic",
            key="…ant9",
            rpm_limit=None,
            tpm_limit=None,
            latency_p50_ms=1210.0,
        ),
        deployment(
            "groq-1",
            "fast",
            provider="groq",
            health="key_missing",
            key="-",
            health_reason="GROQ_API_KEY is not set",
            rpm_used=0,
            tpm_used=0,
        ),
    ]
    usage_groups = [
        dict(row(30, 4000, 9000, 0.52, 1, 2, 800.0), group="gpt-4o"),
        dict(row(10, 1500, 3000, 0.25, 0, 0, 1200.0), group="claude"),
    ]
    usage_deps = [
        dict(row(20, 3000, 6000, 0.35, 0, 2, 780.0), deployment="gpt-4o-1", group="gpt-4o"),
        dict(row(10, 1000, 3000, 0.17, 1, 0, 900.0), deployment="gpt-4o-2", group="gpt-4o"),
        dict(row(10, 1500, 3000, 0.25, 0, 0, 1200.0), deployment="claude-1", group="claude"),
    ]
    return {
        "server": {
            "version": "0.1.0",
            "listen": "http://127.0.0.1:4000",
            "started_at": NOW - 3725,
            "uptime_s": 3725.0,
            "config_path": None,
            "demo": True,
            "requests_total": 40,
            "requests_per_s": 1.5,
            "in_flight": 1,
            "usage_store": {
                "ok": True,
                "error": None,
                "path": "/tmp/usage.db",
                "kind": "sqlite",
                "shared": False,
                "pending": 0,
            },
            "redis": {
                "configured": False,
                "ok": True,
                "error": None,
                "state": {"configured": False, "ok": True, "error": None},
                "cache": {"configured": False, "ok": True},
            },
            "warnings": ["model_list[3]: GROQ_API_KEY is not set; deployment disabled"],
            "events_dropped": 0,
        },
        "deployments": deps,
        "groups": [
            {"name": "gpt-4o", "deployments": ["gpt-4o-1", "gpt-4o-2"], "fallbacks": ["claude"]},
            {"name": "claude", "deployments": ["claude-1"], "fallbacks": []},
            {"name": "fast", "deployments": ["groq-1"], "fallbacks": []},
        ],
        "cache": {
            "enabled": True,
            "type": "local",
            "entries": 12,
            "bytes": 48_000,
            "max_entries": 1000,
            "max_bytes": 64 * 1024 * 1024,
            "hits": 4,
            "misses": 36,
            "hit_rate": 0.1,
            "hit_rate_5m": 0.25,
            "tokens_saved": 580,
            "cost_saved": 0.012,
            "history": [[NOW - 60 * i, i % 3, 2] for i in range(30, 0, -1)],
        },
        "usage": {
            "totals": row(40, 5500, 12000, 0.77, 1, 2, 850.0),
            "today": row(12, 1500, 3600, 0.21, 0, 1, 820.0),
            "by_group": usage_groups,
            "by_group_today": [dict(row(12, 1500, 3600, 0.21, 0, 1, 820.0), group="gpt-4o")],
            "by_deployment": usage_deps,
            "by_deployment_today": [
                dict(row(12, 1500, 3600, 0.21, 0, 1, 820.0), deployment="gpt-4o-1", group="gpt-4o")
            ],
            "by_client": [  # adds up to totals, as the proxy's does
                dict(row(10, 1000, 2000, 0.10, 0, 0, 700.0), client=""),
                dict(row(18, 2500, 6000, 0.40, 0, 1, 900.0), client="Claude Code"),
                dict(row(12, 2000, 4000, 0.27, 1, 1, 800.0), client="Codex"),
            ],
            "by_client_today": [
                dict(row(4, 500, 1200, 0.06, 0, 0, 700.0), client=""),
                dict(row(8, 1000, 2400, 0.15, 0, 1, 850.0), client="Claude Code"),
            ],
            "spend_series": [[NOW - 3600 * i, (i % 5) * 0.01] for i in range(24, 0, -1)],
        },
        "recent": recent(),
        "reload": None,  # no reload yet (see proxy/observe/reload.py for its fields)
        "virtual_keys": [],  # none: the Budgets pane stays hidden (see virtual_key())
        "spend": spend(),
    }


def spend_row(dim: str, name: str, requests: int, cost: float) -> dict[str, Any]:
    return {dim: name, "requests": requests, "tokens_in": requests * 100,
            "tokens_out": requests * 300, "cost": cost}  # fmt: skip


def spend() -> dict[str, Any]:
    """The `spend` section: spend by virtual key, client, session and group."""
    return {
        "by_key": [spend_row("key", "(master)", 40, 0.77)],
        "by_key_today": [spend_row("key", "(master)", 12, 0.21)],
        "by_client": [spend_row("client", "Claude Code", 18, 0.40)],
        "by_client_today": [spend_row("client", "Claude Code", 8, 0.15)],
        "by_session": [spend_row("session", CLAUDE_SESSION, 18, 0.40)],
        "by_session_today": [spend_row("session", CLAUDE_SESSION, 8, 0.15)],
        "by_group": [spend_row("group", "gpt-4o", 30, 0.52)],
        "by_group_today": [spend_row("group", "gpt-4o", 12, 0.21)],
    }


def virtual_key(alias: str | None, **extra: Any) -> dict[str, Any]:
    """One entry of `virtual_keys`, as `proxy.access.book.VirtualKeys.snapshot()` makes it."""
    key = {
        "alias": alias,
        "key_name": "sk-...9f2a",
        "token": "5c1b2e8f0a3d",
        "spend": 1.25,
        "max_budget": 5.0,
        "soft_budget": 4.0,
        "budget_duration": "30d",
        "budget_reset_at": NOW + 12 * 86400 + 4 * 3600,
        "rpm_limit": 60,
        "rpm": 12,
        "tpm_limit": 100_000,
        "tpm": 3400,
        "max_parallel_requests": 4,
        "in_flight": 0,
        "reserved": 0.0,
        "models": ["gpt-4o"],
        "blocked": False,
        "expires": None,
        "expired": False,
        "last_used": NOW - 185,
        "created_at": NOW - 10 * 86400,
        "metadata": {"team": "x"},
    }
    key.update(extra)
    return key


class FakeSource:
    """A LiveSource serving a scripted state document and events."""

    def __init__(self, snapshot: dict[str, Any] | None = None) -> None:
        self.state = snapshot if snapshot is not None else state()
        self.events: list[dict[str, Any]] = []
        self.actions: list[tuple[str, str | None]] = []
        self.base_url = "http://127.0.0.1:4000"
        self.api_key: str | None = None
        self.connected = True
        self.in_process = True
        """Quitting asks first, as with the proxy in this process."""
        self.error: str | None = None
        self.started = False
        self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def refresh(self) -> None:
        self.state = copy.copy(self.state)

    def snapshot(self) -> dict[str, Any] | None:
        return self.state

    def drain(self) -> list[dict[str, Any]]:
        events, self.events = self.events, []
        return events

    def push(self, *events: dict[str, Any]) -> None:
        self.events.extend(events)

    def update(self, **sections: Any) -> None:
        """Replaces sections of the state document (a new snapshot object)."""
        self.state = {**self.state, **sections}

    async def action(self, name: str, deployment: str | None = None) -> dict[str, Any]:
        self.actions.append((name, deployment))
        if name == "probe":
            return {"ok": True, "status": 200, "latency_ms": 85.0, "detail": "42 models"}
        if name == "clear_cache":
            return {"cleared": 12}
        return {"ok": True}


@pytest.fixture(autouse=True)
def settings_dir(tmp_path_factory, monkeypatch) -> Any:
    """The dashboard's settings (the theme) in a fresh directory, never the user's."""
    path = tmp_path_factory.mktemp("settings")
    monkeypatch.setenv("LLMPROXY_TUI_CONFIG_DIR", str(path))
    return path


@pytest.fixture
def source() -> FakeSource:
    return FakeSource()


def make_app(source: FakeSource, **kwargs: Any):
    from tui.app import DashboardApp

    kwargs.setdefault("clock", lambda: NOW)
    kwargs.setdefault("refresh_interval", None)
    kwargs.setdefault("blink", False)
    return DashboardApp(source, config_label="demo (built-in)", demo=True, **kwargs)


def mock_config(tmp_path, upstream_base: str | None = None) -> dict[str, Any]:
    """A config with mock groups (priced, cached) and, given a fake upstream, an OpenAI group
    whose only key gets rate limited."""
    info = {"input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002}
    models: list[dict[str, Any]] = [
        {
            "model_name": "mock-a",
            "litellm_params": {"model": "mock/a", "mock_response": "**Hello** from mock A"},
            "model_info": dict(info, id="mock-a-1"),
        },
        {
            "model_name": "mock-b",
            "litellm_params": {"model": "mock/b", "mock_response": "Hi from mock B"},
            "model_info": dict(info, id="mock-b-1"),
        },
    ]
    if upstream_base:
        models.append(
            {
                "model_name": "gpt-up",
                "litellm_params": {
                    "model": "openai/gpt-4o-mini",
                    "api_base": upstream_base,
                    "api_key": "sk-test-ratelimited-0001",
                },
                "model_info": dict(info, id="up-1"),
            }
        )
        models.append(
            {
                "model_name": "gpt-priced",
                "litellm_params": {
                    "model": "openai/gpt-4o-mini",
                    "api_base": upstream_base,
                    "api_key": "sk-test-priced-00002",
                },
                "model_info": dict(info, id="priced-1"),
            }
        )
    return {
        "model_list": models,
        "router_settings": {"num_retries": 0, "cooldown_time": 60},
        "litellm_settings": {"cache": True, "cache_params": {"type": "local", "ttl": 600}},
    }


def local_app(config: dict[str, Any], tmp_path, **kwargs: Any):
    """A LocalDashboardApp around a real Runtime and ProxyServer on a free port."""
    from proxy.config.loader import build_config
    from proxy.http.server import ProxyServer
    from proxy.runtime import Runtime
    from tui.launch import LocalDashboardApp

    runtime = Runtime(build_config(config), usage_db=tmp_path / "usage.db")
    server = ProxyServer(runtime, "127.0.0.1", 0)
    kwargs.setdefault("refresh_interval", None)
    kwargs.setdefault("blink", False)
    return LocalDashboardApp(runtime, server, config_label="test", demo=False, **kwargs)


@contextlib.asynccontextmanager
async def running(app, size=(120, 40)):
    """`app.run_test()` that always stops the in-process proxy, even when the test fails."""
    try:
        async with app.run_test(size=size) as pilot:
            yield pilot
    finally:
        app.server.stop()
