"""FakeCollector: an OTLP/HTTP trace receiver on loopback (`POST …/v1/traces`, protobuf),
decoding each export with opentelemetry-proto; it can hang every export to play a dead one."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


@dataclass(frozen=True)
class Span:
    """One received span, flattened."""

    name: str
    kind: int
    attributes: dict[str, Any]
    resource: dict[str, Any]
    status_code: int
    start_ns: int
    end_ns: int
    raw: bytes
    """The whole export request the span came in, as received."""


@dataclass(frozen=True)
class Export:
    path: str
    headers: dict[str, str]
    body: bytes


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def _attrs(items: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in items if isinstance(kv, KeyValue)}


class FakeCollector:
    """Records every export and its spans; `hang=True` holds each export until `release()`."""

    def __init__(self, *, hang: bool = False) -> None:
        self.exports: list[Export] = []
        self.spans: list[Span] = []
        self.hanging = 0
        self._hang = hang
        self._released = threading.Event()
        self._changed = threading.Condition()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                collector._received(self.path, dict(self.headers.items()), body)
                if collector._hang:
                    with collector._changed:
                        collector.hanging += 1
                        collector._changed.notify_all()
                    collector._released.wait(30)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeCollector:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()

    def release(self) -> None:
        """Lets every held export (and any later one) answer."""
        self._hang = False
        self._released.set()

    def _received(self, path: str, headers: dict[str, str], body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        spans = [
            Span(
                span.name,
                span.kind,
                _attrs(span.attributes),
                _attrs(rs.resource.attributes),
                span.status.code,
                span.start_time_unix_nano,
                span.end_time_unix_nano,
                body,
            )
            for rs in request.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]
        with self._changed:
            self.exports.append(Export(path, {k.lower(): v for k, v in headers.items()}, body))
            self.spans.extend(spans)
            self._changed.notify_all()

    def wait_spans(self, count: int, timeout: float = 10.0) -> list[Span]:
        """Returns the spans once at least `count` arrived; raises AssertionError on timeout."""
        self._wait(lambda: len(self.spans) >= count, timeout, f"{count} spans")
        return list(self.spans)

    def wait_hanging(self, count: int = 1, timeout: float = 10.0) -> None:
        self._wait(lambda: self.hanging >= count, timeout, f"{count} held exports")

    def _wait(self, ready: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not ready():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"collector: no {what} within {timeout}s")
                self._changed.wait(left)
