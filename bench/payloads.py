"""The bench's wire shapes: the client's chat request and the upstream's canned answers.

Requests look like what a coding agent sends (system + user messages, a few params); answers
are what OpenAI returns (a `chat.completion` with usage, or ~20 `chat.completion.chunk` events
ending with a usage chunk and `data: [DONE]`).
"""

from __future__ import annotations

import json

UPSTREAM_KEY = "sk-bench-upstream-key-000000"
MASTER_KEY = "sk-bench-master-key-0000000000"
UPSTREAM_MODEL = "bench-model"
STREAM_CHUNKS = 20

_SYSTEM = (
    "You are a careful senior software engineer. Answer with short, correct code and a one-line "
    "explanation. Prefer the standard library. Never invent APIs."
)
_USER = (
    "In Python 3.11, write a function `chunked(seq, n)` that yields successive lists of at most "
    "n items from any iterable, without loading it all into memory. Include type hints."
)
_ANSWER = (
    "Use itertools.islice in a loop: `def chunked(seq: Iterable[T], n: int) -> Iterator[list[T]]:"
    " it = iter(seq); while batch := list(islice(it, n)): yield batch` - it reads only n items "
    "at a time and stops when the iterator is exhausted."
)
_ANSWER_WORDS = _ANSWER.split(" ")
_USAGE = {"prompt_tokens": 58, "completion_tokens": 48, "total_tokens": 106}
_CREATED = 1_735_000_000


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


def request_body(model: str, *, stream: bool) -> str:
    """The JSON body a real client would POST to /v1/chat/completions.

    Returns:
        The body as a compact JSON string.
    """
    body: dict[str, object] = {
        "model": model,
        "messages": [
            {"role": "system", "content": _SYSTEM},
            {"role": "user", "content": _USER},
        ],
        "temperature": 0.2,
        "max_tokens": 512,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return _dumps(body)


def completion_json() -> str:
    """The upstream's non-streaming answer: one `chat.completion` with usage.

    Returns:
        The body as a compact JSON string.
    """
    return _dumps(
        {
            "id": "chatcmpl-bench000000000000000001",
            "object": "chat.completion",
            "created": _CREATED,
            "model": UPSTREAM_MODEL,
            "system_fingerprint": "fp_bench0001",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": _ANSWER},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _USAGE,
        }
    )


def _chunk(delta: dict[str, object], finish: str | None, usage: object = None) -> str:
    choices = (
        [] if usage else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    )
    return (
        "data: "
        + _dumps(
            {
                "id": "chatcmpl-bench000000000000000002",
                "object": "chat.completion.chunk",
                "created": _CREATED,
                "model": UPSTREAM_MODEL,
                "system_fingerprint": "fp_bench0001",
                "choices": choices,
                "usage": usage,
            }
        )
        + "\n\n"
    )


def stream_events() -> list[str]:
    """The upstream's streaming answer as SSE events (each ends with a blank line).

    A role chunk, content chunks, a finish chunk, a usage chunk and `data: [DONE]`:
    STREAM_CHUNKS `chat.completion.chunk` events in all.

    Returns:
        The events, in order, each a complete `data: ...\\n\\n` string.
    """
    content_chunks = STREAM_CHUNKS - 3
    per = max(1, len(_ANSWER_WORDS) // content_chunks)
    pieces = [" ".join(_ANSWER_WORDS[i * per : (i + 1) * per]) + " " for i in range(content_chunks)]
    pieces[-1] += " ".join(_ANSWER_WORDS[content_chunks * per :])
    events = [_chunk({"role": "assistant", "content": ""}, None)]
    events += [_chunk({"content": p}, None) for p in pieces]
    events.append(_chunk({}, "stop"))
    events.append(_chunk({}, None, usage=_USAGE))
    events.append("data: [DONE]\n\n")
    return events
