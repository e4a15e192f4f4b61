"""The `mock` provider: answers `mock_response` locally, streaming it word by word.

It needs no key and no network, which is what the built-in demo config runs on. Its answers
are OpenAI's wire format, so reading them back (`parse_response`, `open_stream`) is OpenAI's.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from proxy.config.types import Deployment
from proxy.errors import NotImplementedByProvider, UpstreamError
from proxy.providers.base import StreamDecoder
from proxy.providers.openai import OpenAIProvider
from proxy.schema import ChatRequest, ChatResponse, Chunk, UpstreamRequest, Usage, text_preview

DEFAULT_REPLY = "This is a mock response from llmproxy-tui."
WORD_DELAY = 0.02
"""Seconds between streamed words, so the demo looks alive."""


class MockProvider:
    """Answers locally (`local` is itself): the attempt never sends anything for it."""

    wire = "mock"
    forwarded_headers: tuple[str, ...] = ()
    native_wire: str | None = None

    def __init__(self) -> None:
        self._openai = OpenAIProvider()

    @property
    def local(self) -> MockProvider:
        return self

    def respond(self, req: ChatRequest, dep: Deployment) -> ChatResponse:
        """Returns the whole mock answer (`mock_response`, else DEFAULT_REPLY)."""
        return respond(req, dep)

    def stream(self, req: ChatRequest, dep: Deployment) -> AsyncIterator[Chunk]:
        """Yields the mock answer as OpenAI chunks, one word every WORD_DELAY seconds."""
        return stream(req, dep)

    def build_request(self, req: ChatRequest, dep: Deployment) -> UpstreamRequest:
        """Never called: the mock has no upstream and answers through `local`.

        Raises:
            NotImplementedByProvider: always.
        """
        raise NotImplementedByProvider(f"deployment {dep.id}: the mock sends no upstream request")

    def parse_response(self, req: ChatRequest, dep: Deployment, body: bytes) -> ChatResponse:
        """Returns the answer an OpenAI-format body (such as `respond`'s) stands for."""
        return self._openai.parse_response(req, dep, body)

    def open_stream(self, req: ChatRequest, dep: Deployment) -> StreamDecoder:
        """Returns a decoder for OpenAI-format stream events (such as `stream`'s chunks)."""
        return self._openai.open_stream(req, dep)

    def classify_error(
        self, dep: Deployment, status: int, headers: Mapping[str, str], body: bytes
    ) -> UpstreamError:
        """Returns what an OpenAI-format error means (the mock itself never fails)."""
        return self._openai.classify_error(dep, status, headers, body)

    def probe_request(self, dep: Deployment) -> None:
        """Returns None: there is no key to prove."""
        return None


def _words_in(req: ChatRequest) -> int:
    prompt = req.body.get("prompt") if req.kind == "completions" else req.body.get("input")
    prompts = prompt if isinstance(prompt, list) else [prompt]
    count = sum(len(p.split()) for p in prompts if isinstance(p, str))
    for message in req.body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            count += len(content.split())
        elif isinstance(content, list):
            count += sum(
                len(str(p.get("text", "")).split()) for p in content if isinstance(p, dict)
            )
    return max(1, count)


def _usage(req: ChatRequest, text: str) -> Usage:
    prompt, completion = _words_in(req), len(text.split())
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def respond(req: ChatRequest, dep: Deployment) -> ChatResponse:
    """Returns the whole mock answer."""
    text = dep.mock_response or DEFAULT_REPLY
    usage = _usage(req, text)
    if req.kind == "embeddings":
        inputs = req.body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        doc: dict[str, Any] = {
            "object": "list",
            "model": req.model,
            "data": [
                {"object": "embedding", "index": i, "embedding": [0.0] * 8}
                for i in range(len(items))
            ],
            "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens},
        }
        return ChatResponse(body=orjson.dumps(doc), usage=usage, model=req.model)
    doc = {
        "id": f"chatcmpl-mock-{uuid.uuid4().hex[:20]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": req.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage.as_openai(),
    }
    if req.kind == "completions":
        doc["object"] = "text_completion"
        doc["choices"] = [{"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}]
    return ChatResponse(
        body=orjson.dumps(doc),
        usage=usage,
        preview=text_preview(text),
        model=req.model,
        finish="stop",
    )


async def stream(req: ChatRequest, dep: Deployment) -> AsyncIterator[Chunk]:
    """Yields the mock answer as OpenAI chunks, one word at a time, then a usage chunk.

    Chat requests get `chat.completion.chunk` deltas; /v1/completions gets `text_completion`
    chunks with `text`, as OpenAI streams them.
    """
    text = dep.mock_response or DEFAULT_REPLY
    legacy = req.kind == "completions"
    base = {
        "id": f"{'cmpl' if legacy else 'chatcmpl'}-mock-{uuid.uuid4().hex[:20]}",
        "object": "text_completion" if legacy else "chat.completion.chunk",
        "created": int(time.time()),
        "model": req.model,
    }

    def chunk(piece: str | None, finish: str | None = None, *, role: bool = False) -> bytes:
        if legacy:
            choice: dict[str, Any] = {"index": 0, "text": piece or "", "logprobs": None}
        else:
            delta: dict[str, Any] = {"role": "assistant"} if role else {}
            if piece is not None:
                delta["content"] = piece
            choice = {"index": 0, "delta": delta, "logprobs": None}
        choice["finish_reason"] = finish
        return orjson.dumps({**base, "choices": [choice]})

    if not legacy:
        yield Chunk(data=chunk("", role=True))
    for i, word in enumerate(text.split(" ")):
        if i or not legacy:
            await asyncio.sleep(WORD_DELAY)
        piece = word if i == 0 else " " + word
        yield Chunk(data=chunk(piece), text=piece)
    yield Chunk(data=chunk(None, "stop"), finish="stop")
    usage = _usage(req, text)
    yield Chunk(
        data=orjson.dumps({**base, "choices": [], "usage": usage.as_openai()}),
        usage=usage,
        usage_only=True,
    )
