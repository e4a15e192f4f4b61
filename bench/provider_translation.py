"""What each provider adapter's translation costs per request, in one process, no I/O.

    python bench/provider_translation.py [--rounds 7] [--iterations 300]

For every adapter: `build_request` of a typical agent turn (a system prompt, 12 messages with
a tool round trip, 4 tools), `parse_response` of a typical answer (about 150 words), and a
stream of that answer (about 150 events, split from the raw bytes by the SSE decoder, then
`open_stream(...).feed`). The answers are the fake upstreams' own renderings of one scripted
reply (`tests/fakes/`), so each adapter reads its own wire format byte for byte. CPU µs per
request, the best of `--rounds` (each the mean of `--iterations` calls).

To add a provider: one `Case` in `cases()` (its deployment, and its fake's answer and stream).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.config.types import Deployment
from proxy.providers.base import BinaryStreamDecoder
from proxy.providers.registry import PROVIDERS
from proxy.schema import ChatRequest
from proxy.secret import Secret
from proxy.sse import SSEDecoder
from tests.fakes import anthropic_wire, bedrock, gemini_wire, openai_wire
from tests.fakes.exchange import Exchange
from tests.fakes.steps import reply

WORDS = " ".join(f"word{i % 37}" for i in range(150))
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": f"tool_{i}",
            "description": "Does one thing to a file in the workspace.",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "text": {"type": "string"}},
                "required": ["path"],
            },
        },
    }
    for i in range(4)
]


def _messages() -> list[dict[str, Any]]:
    call = {"id": "call_1", "type": "function",
            "function": {"name": "tool_0", "arguments": '{"path": "a.py"}'}}  # fmt: skip
    out: list[dict[str, Any]] = [{"role": "system", "content": "You are a coding agent. " * 20}]
    for i in range(5):
        out.append({"role": "user", "content": f"Step {i}: " + "please change the code. " * 10})
        out.append({"role": "assistant", "content": "Done: " + "I changed it. " * 10})
    out.append({"role": "assistant", "content": None, "tool_calls": [call]})
    out.append({"role": "tool", "tool_call_id": "call_1", "content": "print('hi')\n" * 20})
    return out


BODY = {"model": "g", "messages": _messages(), "tools": TOOLS, "max_tokens": 1024}


@dataclass(frozen=True)
class Case:
    """One adapter's deployment, and its upstream's answer (whole and streamed) to BODY."""

    name: str
    dep: Deployment
    answer: bytes
    stream: bytes


def _dep(provider: str, wire: str, model: str) -> Deployment:
    return Deployment(
        id=provider, group="g", provider=provider, wire=wire, model=model,
        api_base="https://upstream.example", key=Secret("sk-bench-0000"), key_env=None,
    )  # fmt: skip


def _vertex() -> Deployment:
    dep = _dep("vertex_ai", "vertex_ai", "gemini-2.5-flash")
    params = {"vertex_project": "p", "vertex_location": "us-central1"}
    return dataclasses.replace(dep, provider_params=params)  # the token as its key


def cases() -> list[Case]:
    """Returns: the adapters measured, each with its fake upstream's answer and stream."""
    step = reply(WORDS)
    openai_json = openai_wire.render(step, Exchange("/v1/chat/completions", BODY, None, 1))
    openai_sse = openai_wire.render(
        step, Exchange("/v1/chat/completions", {**BODY, "stream": True}, None, 1)
    )
    claude = {"model": "claude-sonnet-4-5", "messages": [], "max_tokens": 1024}
    anthropic_json = anthropic_wire.render(step, Exchange("/v1/messages", claude, None, 1))
    anthropic_sse = anthropic_wire.render(
        step, Exchange("/v1/messages", {**claude, "stream": True}, None, 1)
    )
    gemini_path = "/v1beta/models/gemini-2.5-flash:"
    gemini_json = gemini_wire.render(step, Exchange(gemini_path + "generateContent", {}, None, 1))
    gemini_sse = gemini_wire.render(
        step, Exchange(gemini_path + "streamGenerateContent", {}, None, 1), "alt=sse"
    )
    return [
        Case("openai", _dep("openai", "openai", "gpt-4o"), openai_json.body,
             b"".join(openai_sse.events or [])),
        Case("anthropic", _dep("anthropic", "anthropic", "claude-sonnet-4-5"),
             anthropic_json.body, b"".join(anthropic_sse.events or [])),
        Case("gemini", _dep("gemini", "gemini", "gemini-2.5-flash"), gemini_json.body,
             b"".join(gemini_sse.events or [])),
        Case("vertex_ai", _vertex(), gemini_json.body, b"".join(gemini_sse.events or [])),
        Case("azure", _azure_dep(), openai_json.body, b"".join(openai_sse.events or [])),
        *_bedrock_cases(step),
    ]  # fmt: skip


def _azure_dep() -> Deployment:
    dep = _dep("azure", "azure", "gpt4o-prod")
    return replace(dep, provider_params={"api_version": "2024-10-21"})


def _bedrock_cases(step: Any) -> list[Case]:
    """Bedrock: its answer, and its stream as AWS event-stream bytes (SigV4 in every build)."""
    converse = {"messages": [{"role": "user", "content": [{"text": "Hello"}]}]}
    dep = replace(
        _dep("bedrock", "bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0"),
        api_base="https://bedrock-runtime.us-east-1.amazonaws.com",
        provider_params={"aws_region_name": "us-east-1"},
        credentials={
            "aws_access_key_id": Secret("AKIABENCH"),
            "aws_secret_access_key": Secret("bench-secret"),
        },
    )
    whole = bedrock.render(step, converse, stream=False, seq=1).body
    events = bedrock.render(step, converse, stream=True, seq=1).events or []
    return [Case("bedrock", dep, whole, b"".join(events))]


def _events(case: Case) -> int:
    if case.dep.wire == "bedrock":  # not SSE: count the event-stream messages
        from botocore.eventstream import EventStreamBuffer

        buffer = EventStreamBuffer()
        buffer.add_data(case.stream)
        return sum(1 for _ in buffer)
    return len(SSEDecoder().feed(case.stream))


def _request(stream: bool) -> ChatRequest:
    body = {**BODY, "stream": True} if stream else dict(BODY)
    return ChatRequest(model="g", body=body, stream=stream, created=1)


def _stream_once(case: Case) -> int:
    provider = PROVIDERS[case.dep.wire]
    req = _request(True)
    provider.build_request(req, case.dep)
    decoder = provider.open_stream(req, case.dep)
    if isinstance(decoder, BinaryStreamDecoder):
        return len(decoder.feed_bytes(case.stream))
    events = SSEDecoder().feed(case.stream)
    return sum(len(decoder.feed(event)) for event in events)


def _best(call: Callable[[], object], rounds: int, iterations: int) -> float:
    """Returns: the best mean CPU µs of one call over `rounds` rounds."""
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time_ns()
        for _ in range(iterations):
            call()
        best = min(best, (time.process_time_ns() - start) / iterations / 1000)
    return best


def measure(case: Case, rounds: int, iterations: int) -> dict[str, float]:
    """Returns: µs per build, per parse, per build + parse, and per streamed request."""
    provider = PROVIDERS[case.dep.wire]
    req = _request(False)
    build = _best(lambda: provider.build_request(req, case.dep), rounds, iterations)
    parse = _best(lambda: provider.parse_response(req, case.dep, case.answer), rounds, iterations)
    stream = _best(lambda: _stream_once(case), rounds, max(1, iterations // 10))
    return {"build": build, "parse": parse, "whole": build + parse, "stream": stream}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args()
    rows = []
    for case in cases():
        events = _events(case)
        rows.append((case.name, events, measure(case, args.rounds, args.iterations)))
    print(f"CPU µs per request (best of {args.rounds} rounds, {args.iterations} calls each)")
    print(f"{'provider':<12}{'build':>9}{'parse':>9}{'build+parse':>13}{'stream':>10}  events")
    for name, events, r in rows:
        print(
            f"{name:<12}{r['build']:>9.1f}{r['parse']:>9.1f}{r['whole']:>13.1f}"
            f"{r['stream']:>10.1f}  {events}"
        )


if __name__ == "__main__":
    main()
