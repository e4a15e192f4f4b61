"""The `mock` provider: answers `mock_response` locally, streaming it word by word.

It needs no key and no network, which is what the built-in demo config runs on.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson

from proxy.config.types import Deployment
from proxy.schema import ChatRequest, ChatResponse, Chunk, Usage, text_preview

DEFAULT_REPLY = "This is a mock response from llmproxy-tui."
WORD_DELAY = 0.02
"""Seconds between streamed words, so the demo looks alive."""


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
        body=orjson.dumps(doc), usage=usage, preview=text_preview(text), model=req.model
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
    yield Chunk(data=chunk(None, "stop"))
    usage = _usage(req, text)
    yield Chunk(
        data=orjson.dumps({**base, "choices": [], "usage": usage.as_openai()}),
        usage=usage,
        usage_only=True,
    )
