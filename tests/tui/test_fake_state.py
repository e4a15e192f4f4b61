"""The FakeSource's state document has the fields of a real `GET /llmproxy/state`, so that
renaming, adding or dropping a field in the proxy breaks a test here, not only the dashboard."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.conftest import Proxy
from tests.tui.conftest import FakeSource, mock_config


def key_diff(real: Any, fake: Any, path: str = "") -> list[str]:
    """Returns where the key sets differ, recursing into dicts and the first item of lists."""
    if isinstance(real, dict) and isinstance(fake, dict):
        out = [f"{path}.{k}: only in the proxy" for k in sorted(real.keys() - fake.keys())]
        out += [f"{path}.{k}: only in the fake" for k in sorted(fake.keys() - real.keys())]
        for k in sorted(real.keys() & fake.keys()):
            out += key_diff(real[k], fake[k], f"{path}.{k}")
        return out
    if isinstance(real, list) and isinstance(fake, list) and real and fake:
        return key_diff(real[0], fake[0], f"{path}[0]")
    return []


def test_the_fake_state_has_the_fields_of_the_real_one(
    tmp_path, start_proxy: Callable[..., Proxy]
) -> None:
    proxy = start_proxy(mock_config(tmp_path))
    with proxy.client() as client:
        answer = client.post(
            "/v1/chat/completions",
            json={"model": "mock-a", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert answer.status_code == 200
    deadline = time.monotonic() + 10
    while not (real := proxy.state())["recent"]:  # the event lands just after the answer
        assert time.monotonic() < deadline, "the request never reached recent"
        time.sleep(0.02)
    fake = FakeSource().state
    for section in ("server", "deployments", "groups", "cache", "usage", "recent"):
        assert real[section] and fake[section], section  # something to compare in each
        assert key_diff(real[section], fake[section], section) == [], section
    assert set(real) == set(fake)
    assert real["usage"]["by_group"] and real["recent"][0]["attempt_log"]  # compared too
