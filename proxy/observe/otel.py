"""One OpenTelemetry span per finished request, exported over OTLP/HTTP (to a collector or
Langfuse) by a BatchSpanProcessor's own thread, so a slow or dead collector never delays a
request. Attribute names follow the GenAI semantic conventions; no prompt or answer text.

Imported only when a config asks for a span callback: the SDK costs start-up time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from proxy.config.callbacks import SpanSink
from proxy.config.types import Deployment
from proxy.events import RequestFinished

log = logging.getLogger("llmproxy")
EXPORT_TIMEOUT = 5.0
"""Seconds one export may take (the SDK retries inside it) before its batch is dropped."""
MAX_QUEUE = 4096
"""Spans waiting for export; past it the oldest are dropped, the request never waits."""

OPERATIONS = {"chat": "chat", "embeddings": "embeddings", "completions": "text_completion"}
"""Our request kinds -> `gen_ai.operation.name`."""
PROVIDER_NAMES = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai",
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "bedrock": "aws.bedrock",
    "cohere": "cohere",
    "groq": "groq",
    "deepseek": "deepseek",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "perplexity": "perplexity",
}
"""Our provider prefixes -> the semantic conventions' well-known `gen_ai.provider.name`
values; any other prefix is sent as it is."""


class SpanExporter:
    """Turns finished requests into spans for one sink (otel or langfuse)."""

    def __init__(self, sink: SpanSink, deployments: tuple[Deployment, ...]) -> None:
        self.sink = sink
        self._models = {d.id: d for d in deployments}
        exporter = OTLPSpanExporter(
            endpoint=sink.endpoint,
            headers={k: v.reveal() for k, v in sink.headers.items()},
            timeout=EXPORT_TIMEOUT,
        )
        self._processor = BatchSpanProcessor(exporter, max_queue_size=MAX_QUEUE)
        resource = Resource.create({"service.name": sink.service_name})
        # Our own provider, not the global one: FastAPI's built-in telemetry (it reads the
        # global provider) stays off. shutdown_on_exit=False: at exit the SDK would wait 30 s
        # on a collector that hangs; close() bounds the wait instead.
        self._provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        self._provider.add_span_processor(self._processor)
        self._tracer = self._provider.get_tracer("llmproxy-tui")

    def record(self, ev: RequestFinished) -> None:
        """Queues the span of one finished request (O(1); the export runs elsewhere)."""
        failed = ev.error is not None or ev.status >= 400
        if not self.sink.wants(failed):
            return
        attributes = span_attributes(ev, self._response_model(ev))
        if self.sink.name == "langfuse":
            attributes.update(langfuse_attributes(ev))
        start = int(ev.time * 1e9)
        span = self._tracer.start_span(
            f"{attributes['gen_ai.operation.name']} {ev.group}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=start,
        )
        if failed:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=start + int(ev.latency_ms * 1e6))

    def close(self, timeout: float = 2.0) -> None:
        """Flushes what is queued and stops, waiting at most `timeout` seconds."""
        done = threading.Thread(target=self._provider.shutdown, name="otel-close", daemon=True)
        done.start()
        done.join(timeout)
        if done.is_alive():
            log.warning("%s: spans still unsent at shutdown were dropped", self.sink.name)

    def _response_model(self, ev: RequestFinished) -> str | None:
        dep = self._models.get(ev.deployment or "")
        return dep.upstream_model(ev.group) if dep is not None else None


def span_attributes(ev: RequestFinished, response_model: str | None) -> dict[str, Any]:
    """The span's attributes: what was asked, who answered, tokens, cost, status; never the
    prompt, the answer, its preview or an error message (which may quote either)."""
    failed = ev.error is not None or ev.status >= 400
    provider = PROVIDER_NAMES.get(ev.provider or "", ev.provider or "_OTHER")  # none chosen yet
    out: dict[str, Any] = {
        "gen_ai.operation.name": OPERATIONS.get(ev.kind, ev.kind),
        "gen_ai.provider.name": provider,
        "gen_ai.system": provider,
        "gen_ai.request.model": ev.group,
        "gen_ai.usage.input_tokens": ev.prompt_tokens,
        "gen_ai.usage.output_tokens": ev.completion_tokens,
        "http.response.status_code": ev.status,
        "llmproxy.request_id": ev.id,
        "llmproxy.stream": ev.stream,
        "llmproxy.cache": ev.cache,
        "llmproxy.attempts": ev.attempts,
        "llmproxy.front_door": ev.front_door,
        "llmproxy.latency_ms": round(ev.latency_ms, 3),
    }
    optional: Mapping[str, Any] = {
        "gen_ai.response.model": response_model,
        "gen_ai.usage.cache_read.input_tokens": ev.cached_tokens or None,
        "gen_ai.conversation.id": ev.session,
        "error.type": str(ev.status) if failed else None,
        "llmproxy.deployment": ev.deployment,
        "llmproxy.cost_usd": ev.cost,
        "llmproxy.fallback": ev.fallback,
        "llmproxy.ttft_ms": round(ev.ttft_ms, 3) if ev.ttft_ms is not None else None,
        "llmproxy.client": ev.client or None,
    }
    out.update((k, v) for k, v in optional.items() if v is not None)
    return out


def langfuse_attributes(ev: RequestFinished) -> dict[str, Any]:
    """What Langfuse reads beyond the GenAI names: the observation's type (a generation, so
    usage and cost are shown), the cost it should not re-infer, the session."""
    out: dict[str, Any] = {
        "langfuse.observation.type": "embedding" if ev.kind == "embeddings" else "generation"
    }
    if ev.cost is not None:
        out["gen_ai.usage.cost"] = ev.cost
    if ev.session:
        out["langfuse.session.id"] = ev.session
    return out
