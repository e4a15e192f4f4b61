"""LiteLLM drop-in configs served for real: vendor-prefix groups, `custom_llm_provider`, the
`provider/*` and `*` pass-throughs, per-deployment default params and `ssl_verify`, each
asserted on what the fake upstream received (the openai and anthropic SDKs -> the proxy ->
the fake)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
import threading
from pathlib import Path

import anthropic
import openai
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import MASTER_KEY

KEY = "sk-vendor-secret-0123456789-abcd"
HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture
def client(fake, start_proxy):
    def start(model_list: list[dict[str, object]], **sections: object) -> openai.OpenAI:
        proxy = start_proxy({"model_list": model_list, **sections}, master_key=MASTER_KEY)
        return proxy.openai()

    return start


def entry(group: str, model: str, api_base: str, **params: object) -> dict[str, object]:
    return {
        "model_name": group,
        "litellm_params": {"model": model, "api_base": api_base, "api_key": KEY, **params},
    }


def test_vendor_prefix_groups_reach_the_vendor_with_the_prefix_stripped(fake, client) -> None:
    sdk = client(
        [
            entry("nim", "nvidia_nim/meta/llama3-70b-instruct", fake.openai_base),
            entry("local", "ollama_chat/llama3.1", fake.url),  # /v1 added, as for ollama/
            entry("custom", "org/my-model", fake.openai_base, custom_llm_provider="openai_like"),
            entry("groq/*", "groq/*", fake.openai_base),
        ]
    )
    for group in ("nim", "local", "custom", "groq/llama-3.3-70b"):
        answer = sdk.chat.completions.create(model=group, messages=HELLO)
        assert answer.choices[0].message.content
    seen = fake.wait_requests(4)
    assert [s.body["model"] for s in seen] == [
        "meta/llama3-70b-instruct",
        "llama3.1",
        "org/my-model",
        "llama-3.3-70b",
    ]
    assert {s.path for s in seen} == {"/v1/chat/completions"}
    assert {s.key for s in seen} == {KEY}


def test_star_passthrough_forwards_any_name_to_its_server(fake, client) -> None:
    sdk = client([entry("*", "*", fake.openai_base)])
    sdk.chat.completions.create(model="Qwen/Qwen3-8B", messages=HELLO)
    (seen,) = fake.wait_requests(1)
    assert seen.body["model"] == "Qwen/Qwen3-8B"


def test_an_unknown_prefix_is_disabled_and_the_rest_serve(fake, start_proxy) -> None:
    models = [
        entry("ok", "openai/gpt-4o", fake.openai_base),
        entry("odd", "mystery/model-x", fake.openai_base),
    ]
    proxy = start_proxy({"model_list": models}, master_key=MASTER_KEY)
    sdk = proxy.openai()
    assert sdk.chat.completions.create(model="ok", messages=HELLO).choices
    with pytest.raises(openai.APIStatusError) as info:
        sdk.chat.completions.create(model="odd", messages=HELLO)
    assert info.value.status_code == 503
    assert [s.body["model"] for s in fake.requests] == ["gpt-4o"]
    state = proxy.state()
    assert "unknown provider 'mystery'" in proxy.deployment("odd")["health_reason"]
    assert any("unknown provider 'mystery'" in w for w in state["server"]["warnings"])
    assert KEY not in str(state)


def test_deployment_defaults_fill_what_the_client_did_not_set(fake, client) -> None:
    sdk = client(
        [
            entry(
                "tuned",
                "hosted_vllm/qwen3-coder",
                fake.openai_base,
                max_tokens=64,
                temperature=0.2,
                stop=["END"],
                reasoning_effort="low",
                extra_body={"top_k": 5},
                additional_drop_params=["user"],
            )
        ],
        litellm_settings={"default_params": {"seed": 11}},
    )
    sdk.chat.completions.create(model="tuned", messages=HELLO, temperature=0.9, user="u-1")
    sdk.chat.completions.create(model="tuned", messages=HELLO, max_tokens=8, stop="STOP")
    first, second = fake.wait_requests(2)
    assert first.body["temperature"] == 0.9  # the client's own value wins
    assert (first.body["max_tokens"], first.body["stop"], first.body["top_k"]) == (64, ["END"], 5)
    assert (first.body["reasoning_effort"], first.body["seed"]) == ("low", 11)
    assert "user" not in first.body
    assert (second.body["temperature"], second.body["max_tokens"], second.body["stop"]) == (
        0.2,
        8,
        "STOP",
    )


def test_anthropic_deployment_defaults_reach_the_messages_api(fake, start_proxy) -> None:
    proxy = start_proxy(
        {
            "model_list": [
                {
                    "model_name": "claude",
                    "litellm_params": {
                        "model": "anthropic/claude-sonnet-4-5",
                        "api_base": fake.anthropic_base,
                        "api_key": KEY,
                        "temperature": 0.3,
                        "max_tokens": 300,
                        "stop": ["###"],
                        "extra_body": {"metadata": {"user_id": "team-a"}},
                    },
                }
            ]
        },
        master_key=MASTER_KEY,
    )
    proxy.openai().chat.completions.create(model="claude", messages=HELLO)
    with anthropic.Anthropic(base_url=proxy.url, api_key=MASTER_KEY, max_retries=0) as sdk:
        sdk.messages.create(model="claude", max_tokens=40, messages=HELLO)  # passed through
    translated, native = fake.wait_requests(2)
    assert translated.path == native.path == "/v1/messages"
    assert (translated.body["temperature"], translated.body["max_tokens"]) == (0.3, 300)
    assert translated.body["stop_sequences"] == ["###"]
    assert translated.body["metadata"] == {"user_id": "team-a"}
    assert (native.body["temperature"], native.body["max_tokens"]) == (0.3, 40)
    assert native.body["stop_sequences"] == ["###"]


# ---- ssl_verify: a self-signed HTTPS upstream ----


class TlsFront:
    """HTTPS on loopback with a self-signed certificate, relaying each connection to the fake
    upstream: a llama.cpp server behind a self-made certificate, as users run them."""

    def __init__(self, target_port: int, cert: Path, key: Path) -> None:
        self._target = target_port
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(cert, key)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    def __enter__(self) -> TlsFront:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._relay, "127.0.0.1", 0, ssl=self._context)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for end in (writer, up_writer):
                end.close()
                with contextlib.suppress(Exception):
                    await end.wait_closed()
            self._tasks.discard(task)


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    with contextlib.suppress(ConnectionError, ssl.SSLError, RuntimeError, OSError):
        dst.write_eof()


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "llama-cpp.local")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_ssl_verify_false_or_a_ca_bundle_reaches_a_self_signed_server(
    fake, start_proxy, tmp_path
) -> None:
    cert, key = self_signed(tmp_path)
    with TlsFront(fake.port, cert, key) as one, TlsFront(fake.port, cert, key) as other:
        proxy = start_proxy(
            {
                "model_list": [
                    entry(
                        "unchecked",
                        "openai/local-a",
                        f"https://localhost:{one.port}/v1",
                        ssl_verify=False,
                    ),
                    entry(
                        "own-ca",
                        "openai/local-b",
                        f"https://127.0.0.1:{one.port}/v1",
                        ssl_verify=str(cert),
                    ),
                    entry("checked", "openai/local-c", f"https://127.0.0.1:{other.port}/v1"),
                ],
                "router_settings": {"num_retries": 0},
            },
            master_key=MASTER_KEY,
        )
        sdk = proxy.openai()
        assert sdk.chat.completions.create(model="unchecked", messages=HELLO).choices
        assert sdk.chat.completions.create(model="own-ca", messages=HELLO).choices
        with pytest.raises(openai.APIStatusError) as info:
            sdk.chat.completions.create(model="checked", messages=HELLO)
        assert info.value.status_code == 502  # the certificate is refused: nothing is sent
        assert [s.body["model"] for s in fake.requests] == ["local-a", "local-b"]


@pytest.mark.parametrize(("allowed", "served"), [(["10.0.0.0/8"], False), (["127.0.0.0/8"], True)])
def test_allowed_ips_refuse_other_clients_on_every_route(
    fake, start_proxy, allowed, served
) -> None:
    config = {
        "model_list": [entry("gpt", "openai/gpt-4o", fake.openai_base)],
        "general_settings": {"allowed_ips": allowed},
    }
    proxy = start_proxy(config, master_key=MASTER_KEY)
    sdk = proxy.openai()
    if served:
        assert sdk.chat.completions.create(model="gpt", messages=HELLO).choices
        return
    with pytest.raises(openai.PermissionDeniedError) as refused:
        sdk.chat.completions.create(model="gpt", messages=HELLO)
    assert refused.value.code == "ip_not_allowed"
    sdk_a = anthropic.Anthropic(base_url=proxy.url, api_key=MASTER_KEY, max_retries=0)
    with sdk_a, pytest.raises(anthropic.PermissionDeniedError):
        sdk_a.messages.create(model="gpt", max_tokens=5, messages=HELLO)
    with proxy.client() as c:  # health too: the list guards every route
        assert c.get("/health").status_code == 403
    assert fake.requests == []  # nothing reached the upstream
