"""`proxy.config.callbacks`: the callback lists and the OTEL_* / LANGFUSE_* variables read into
span sinks the way LiteLLM and the OpenTelemetry spec read them."""

from __future__ import annotations

from proxy.config.callbacks import parse_headers, resolve_callbacks
from proxy.config.settings import LitellmSettings


def resolve(env: dict[str, str], **settings):
    warnings: list[str] = []
    sinks = resolve_callbacks(LitellmSettings.model_validate(settings), warnings, env)
    return sinks, warnings


def test_endpoint_spellings() -> None:
    cases = {
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ("http://c:9/custom", "http://c:9/custom"),
        "OTEL_EXPORTER_OTLP_ENDPOINT": ("http://c:4318/", "http://c:4318/v1/traces"),
        "OTEL_ENDPOINT": (
            "https://api.honeycomb.io/v1/traces",
            "https://api.honeycomb.io/v1/traces",
        ),
    }
    for var, (value, expected) in cases.items():
        [sink], warnings = resolve({var: value}, callbacks="otel")
        assert (sink.name, sink.endpoint, warnings) == ("otel", expected, [])
    [sink], _ = resolve({}, success_callback=["opentelemetry"])
    assert sink.endpoint == "http://localhost:4318/v1/traces"
    assert (sink.on_success, sink.on_failure, sink.service_name) == (True, False, "llmproxy-tui")


def test_outcomes_merge_across_lists() -> None:
    [sink], _ = resolve({}, success_callback=["otel"], failure_callback=["otel"])
    assert sink.on_success and sink.on_failure
    [sink], _ = resolve({}, failure_callback=["OTEL"])
    assert (sink.on_success, sink.on_failure) == (False, True)


def test_headers_and_service_name() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20tok, x-a = b ,broken",
        "OTEL_SERVICE_NAME": "gateway",
    }
    [sink], _ = resolve(env, callbacks=["otel"])
    assert {k: v.reveal() for k, v in sink.headers.items()} == {
        "authorization": "Bearer tok",
        "x-a": "b",
    }
    assert "tok" not in repr(sink)
    assert sink.service_name == "gateway"
    assert parse_headers("") == {}


def test_langfuse_needs_both_keys_and_grpc_is_warned() -> None:
    sinks, warnings = resolve({"LANGFUSE_PUBLIC_KEY": "pk"}, callbacks=["langfuse"])
    assert sinks == ()
    assert warnings == [
        "litellm_settings.callbacks: langfuse: LANGFUSE_SECRET_KEY is not set, so nothing is "
        "sent to Langfuse"
    ]
    env = {"LANGFUSE_PUBLIC_KEY": "pk", "LANGFUSE_SECRET_KEY": "sk"}
    [sink], _ = resolve(env, callbacks=["langfuse"])
    assert sink.endpoint == "https://cloud.langfuse.com/api/public/otel/v1/traces"
    [sink], _ = resolve({**env, "LANGFUSE_HOST": "http://lf:3000/"}, callbacks=["langfuse_otel"])
    assert (sink.name, sink.endpoint) == ("langfuse", "http://lf:3000/api/public/otel/v1/traces")
    _, warnings = resolve({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, callbacks=["otel"])
    assert len(warnings) == 1 and warnings[0].startswith("OTEL_EXPORTER_OTLP_PROTOCOL=grpc")


def test_prometheus_and_nothing_give_no_sink() -> None:
    assert resolve({}, success_callback=["prometheus"]) == ((), [])
    assert resolve({}) == ((), [])
