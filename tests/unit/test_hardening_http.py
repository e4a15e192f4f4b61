"""The browser guard of a keyless proxy and the client-connection settings, built directly
(issue 13): which Host and Origin values name the proxy, and how the settings are read."""

from __future__ import annotations

import pytest

from proxy.config.loader import build_config
from proxy.errors import AuthError, ConfigError, ProxyError
from proxy.http.auth import route_check
from proxy.http.connections import MAX_CONNECTIONS, default_max_connections
from proxy.secret import Secret

MODELS = [{"model_name": "m", "litellm_params": {"model": "mock/x", "mock_response": "hi"}}]

OWN = [
    {},
    {"host": "127.0.0.1:4000"},
    {"host": "localhost"},
    {"host": "LocalHost.:4000"},
    {"host": "[::1]:4000"},
    {"host": "[::1]"},
    {"host": "box.lan"},
    {"host": "BOX.LAN:8080", "origin": "https://box.lan"},
    {"origin": "http://localhost:5173"},
    {"origin": "http://[::1]:3000"},
    {"origin": "app://127.0.0.1"},
    {"host": "10.1.2.3:4000"},  # the listen address
]
FOREIGN = [
    {"host": "evil.example"},
    {"host": "localhost.evil.example"},
    {"host": "box.lan.evil.example:4000"},
    {"host": "127.0.0.2"},
    {"host": "[::1"},
    {"host": ""},
    {"host": "localhost:4000:80"},
    {"origin": "null"},
    {"origin": "https://evil.example"},
    {"origin": "http://localhost.evil.example"},
    {"origin": "http://[::1"},
    {"origin": "localhost"},
    {"origin": ""},
    {"host": "localhost", "origin": "https://evil.example"},
]


@pytest.mark.parametrize("headers", OWN, ids=str)
def test_the_proxys_own_names_pass(headers) -> None:
    route_check(None, "10.1.2.3", ["box.lan"])(headers)


@pytest.mark.parametrize("headers", FOREIGN, ids=str)
def test_other_names_are_refused_with_403_naming_the_setting(headers) -> None:
    with pytest.raises(ProxyError) as refused:
        route_check(None, "10.1.2.3", ["box.lan"])(headers)
    assert refused.value.status == 403
    assert refused.value.code in ("host_not_allowed", "origin_not_allowed")
    assert "general_settings.allowed_hosts" in refused.value.message


def test_a_hostile_value_is_echoed_short_and_escaped() -> None:
    with pytest.raises(ProxyError) as refused:
        route_check(None, "127.0.0.1", [])({"host": "\x1b]0;x\x07" + "a" * 10_000})
    assert "\x1b" not in refused.value.message and "\\x1b" in refused.value.message
    assert len(refused.value.message) < 400


def test_a_star_turns_the_guard_off() -> None:
    route_check(None, "127.0.0.1", ["*"])({"host": "anything", "origin": "null"})


def test_with_a_master_key_only_the_key_counts() -> None:
    check = route_check(Secret("sk-master-unit-1234"), "127.0.0.1", [])
    check({"authorization": "Bearer sk-master-unit-1234", "host": "evil.example"})
    with pytest.raises(AuthError):
        check({"host": "localhost"})


def test_the_client_settings_are_read_from_general_settings() -> None:
    general = {
        "allowed_hosts": ["box.lan"],
        "client_read_timeout": 12.5,
        "client_idle_timeout": 2,
        "max_client_connections": 300,
    }
    config = build_config({"model_list": MODELS, "general_settings": general})
    assert config.allowed_hosts == ("box.lan",)
    assert (config.client_read_timeout, config.client_idle_timeout) == (12.5, 2)
    assert config.max_client_connections == 300
    defaults = build_config({"model_list": MODELS})
    assert (defaults.client_read_timeout, defaults.client_idle_timeout) == (30, 5)
    assert defaults.allowed_hosts == () and defaults.max_client_connections is None


@pytest.mark.parametrize(
    ("key", "value"),
    [("client_read_timeout", 0), ("client_idle_timeout", "soon"), ("max_client_connections", -1)],
)
def test_a_bad_client_setting_is_a_config_error_naming_it(key, value) -> None:
    with pytest.raises(ConfigError, match=f"general_settings.{key}"):
        build_config({"model_list": MODELS, "general_settings": {key: value}})


def test_the_default_connection_cap_leaves_room_for_upstream_connections() -> None:
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    cap = default_max_connections()
    assert 16 <= cap <= MAX_CONNECTIONS
    if soft != resource.RLIM_INFINITY:
        assert cap <= max(16, soft // 2)
