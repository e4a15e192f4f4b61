"""The Anthropic Messages front door (`POST /v1/messages`), translated path: pure, no I/O.

Entry points, in the order a request uses them:

- `parse(raw, headers, *, drop_params=False) -> (ChatRequest, CacheControl, MessagesRequest)`
  checks the body (a BadRequest naming the field, never a 500) and translates it into an OpenAI
  chat body. `MessagesRequest` keeps the raw body, `passthrough(model)` for an Anthropic
  upstream, and the `session_id` from `metadata.user_id`.
- `render(completion, model) -> bytes`: an OpenAI `chat.completion` (`ChatResponse.body` or a
  cached answer) as a Messages object.
- `MessagesStream(model)`: `feed(chunk)` / `feed_sse(bytes)` per OpenAI chunk, then
  `finish()`; `error(err)` for a failure mid-stream, `ping()` for long waits. Each returns the
  Messages SSE bytes to send.
- `render_error(err) -> (status, bytes)`: any `ProxyError` in Anthropic's shape and statuses.
- `count_tokens(raw) -> (model, bytes)`: `{"input_tokens": N}` estimated from the body.
"""

from proxy.endpoints.anthropic_messages.errors import render_error
from proxy.endpoints.anthropic_messages.request import MessagesRequest, parse
from proxy.endpoints.anthropic_messages.response import render
from proxy.endpoints.anthropic_messages.stream import MessagesStream
from proxy.endpoints.anthropic_messages.tokens import count_tokens, estimate_tokens

__all__ = [
    "MessagesRequest",
    "MessagesStream",
    "count_tokens",
    "estimate_tokens",
    "parse",
    "render",
    "render_error",
]
