"""LiteLLM's `success_callback` / `failure_callback` / `callbacks`, resolved at load: which
span exporters to run (OpenTelemetry, Langfuse over OTLP), where to and with which headers.

Nothing here imports OpenTelemetry: `proxy.observe.otel` does, and only when a sink is set.
"""

from __future__ import annotations

import base64
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from proxy.config.settings import LitellmSettings
from proxy.errors import ConfigError
from proxy.secret import Secret

OTEL_NAMES = frozenset({"otel", "opentelemetry"})
LANGFUSE_NAMES = frozenset({"langfuse", "langfuse_otel"})
SERVED_ELSEWHERE = {"prometheus": "served at GET /metrics"}
DEFAULT_OTLP = "http://localhost:4318"
TRACES_PATH = "/v1/traces"
LANGFUSE_CLOUD = "https://cloud.langfuse.com"
LANGFUSE_PATH = "/api/public/otel/v1/traces"
DEFAULT_SERVICE = "llmproxy-tui"
_KEYS = ("success_callback", "failure_callback", "callbacks")


@dataclass(frozen=True)
class SpanSink:
    """One OTLP/HTTP destination for a span per finished request."""

    name: str
    """"otel" or "langfuse"."""
    endpoint: str
    """The full traces URL (`…/v1/traces`)."""
    headers: Mapping[str, Secret] = field(default_factory=dict)
    """Sent with every export; values are often credentials, hence Secret."""
    on_success: bool = True
    on_failure: bool = True
    service_name: str = DEFAULT_SERVICE

    def wants(self, failed: bool) -> bool:
        return self.on_failure if failed else self.on_success


def resolve_callbacks(
    settings: LitellmSettings, warnings: list[str], env: Mapping[str, str] | None = None
) -> tuple[SpanSink, ...]:
    """Reads the three callback lists into span sinks; other names are one warning each.

    Returns:
        The sinks, each flagged with the outcomes (success, failure) it receives.
    Raises:
        ConfigError: otel or langfuse is asked for but the OpenTelemetry packages are not
            installed (the message names the extra to install).
    """
    env = os.environ if env is None else env
    wanted = _wanted(settings, warnings)
    if not wanted:
        return ()
    sinks = []
    for name, (outcomes, asked) in wanted.items():
        sink = _otel(env) if name == "otel" else _langfuse(env, asked, warnings)
        if sink is not None:  # a disabled one (no Langfuse keys) needs no package
            _require_otel(asked)
            sinks.append(
                dataclasses.replace(
                    sink,
                    on_success="success" in outcomes,
                    on_failure="failure" in outcomes,
                    service_name=env.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE,
                )
            )
    if sinks:
        _warn_protocol(env, warnings)
    return tuple(sinks)


def _wanted(settings: LitellmSettings, warnings: list[str]) -> dict[str, tuple[set[str], str]]:
    """Returns: sink name -> (the outcomes it gets, the first `key: name` asking for it)."""
    out: dict[str, tuple[set[str], str]] = {}
    for key in _KEYS:
        for name in _names(settings, key):
            lower = name.lower()
            sink = "otel" if lower in OTEL_NAMES else "langfuse" if lower in LANGFUSE_NAMES else ""
            if sink:
                out.setdefault(sink, (set(), f"litellm_settings.{key}: {name}"))[0].update(
                    _OUTCOMES[key]
                )
            elif lower not in SERVED_ELSEWHERE:
                warnings.append(
                    f"litellm_settings.{key}: '{name}' is not served (only otel, langfuse and "
                    "prometheus are), ignored"
                )
    return out


def _warn_protocol(env: Mapping[str, str], warnings: list[str]) -> None:
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL"
    )
    if protocol and protocol != "http/protobuf":
        warnings.append(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: only http/protobuf is served; spans are "
            "sent that way (a gRPC-only collector, port 4317, will not receive them)"
        )


_OUTCOMES = {
    "success_callback": {"success"},
    "failure_callback": {"failure"},
    "callbacks": {"success", "failure"},
}


def served_elsewhere(settings: LitellmSettings) -> list[str]:
    """Callback names served without a sink (`prometheus`), each with the key naming it and
    where it is served, for --check."""
    found: dict[str, str] = {}
    for key in _KEYS:
        for name in _names(settings, key):
            if name.lower() in SERVED_ELSEWHERE:
                found.setdefault(name.lower(), key)
    return [f"{n} (litellm_settings.{key}): {SERVED_ELSEWHERE[n]}" for n, key in found.items()]


def _names(settings: LitellmSettings, key: str) -> list[str]:
    value = getattr(settings, key)
    return [value] if isinstance(value, str) else list(value)


def _require_otel(setting: str) -> None:
    from proxy.config.loader import require_package  # the loader imports this module

    for module in ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http"):
        try:
            require_package(module, setting, extra="otel")
        except ModuleNotFoundError:  # a parent package is missing, so find_spec raised
            raise ConfigError(
                f"{setting} is set, but the Python package '{module}' is not installed: "
                "pip install 'llmproxy-tui[otel]'"
            ) from None


def _otel(env: Mapping[str, str]) -> SpanSink:
    """OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as is; else OTEL_EXPORTER_OTLP_ENDPOINT (or LiteLLM's
    older OTEL_ENDPOINT) with `/v1/traces` added unless present; else localhost:4318."""
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if not endpoint:
        base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_ENDPOINT") or DEFAULT_OTLP
        base = base.rstrip("/")
        endpoint = base if base.endswith(TRACES_PATH) else base + TRACES_PATH
    raw = env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or env.get("OTEL_EXPORTER_OTLP_HEADERS")
    return SpanSink("otel", endpoint, parse_headers(raw or env.get("OTEL_HEADERS") or ""))


def _langfuse(env: Mapping[str, str], asked: str, warnings: list[str]) -> SpanSink | None:
    public, secret = env.get("LANGFUSE_PUBLIC_KEY"), env.get("LANGFUSE_SECRET_KEY")
    if not public or not secret:
        unset = [n for n in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY") if not env.get(n)]
        warnings.append(
            f"{asked}: {' and '.join(unset)} {'is' if len(unset) == 1 else 'are'} not set, "
            "so nothing is sent to Langfuse"
        )
        return None
    host = (
        env.get("LANGFUSE_OTEL_HOST")
        or env.get("LANGFUSE_HOST")
        or env.get("LANGFUSE_BASE_URL")
        or LANGFUSE_CLOUD
    )
    token = base64.b64encode(f"{public}:{secret}".encode()).decode()
    return SpanSink(
        "langfuse", host.rstrip("/") + LANGFUSE_PATH, {"authorization": Secret(f"Basic {token}")}
    )


def parse_headers(raw: str) -> dict[str, Secret]:
    """`k=v,k2=v2` (values percent-decoded, as the OTel spec and LiteLLM read them)."""
    out = {}
    for item in raw.split(","):
        name, sep, value = item.partition("=")
        if sep and name.strip():
            out[unquote(name.strip()).lower()] = Secret(unquote(value.strip()))
    return out
