"""The OpenAI Responses front door (`POST /v1/responses`), stateless, translated path: pure.

Entry points, in the order a request uses them:

- `parse(raw, headers, *, drop_params=False) -> (ChatRequest, CacheControl, ResponsesRequest)`
  checks the body (a BadRequest naming the field, never a 500; `previous_response_id` is a
  400) and translates it into an OpenAI chat body. `ResponsesRequest` keeps the raw body,
  `passthrough(model)` for an OpenAI Responses upstream, the `session_id`
  (`prompt_cache_key`), the tool table and the fields a Response echoes.
- `render(completion, info) -> bytes`: an OpenAI `chat.completion` (`ChatResponse.body` or a
  cached answer) as a Response object; calls to `custom` tools come back as
  `custom_tool_call`, calls into a `namespace` with their namespace.
- `ResponsesStream(info)`: `feed(chunk)` / `feed_sse(bytes)` per OpenAI chunk, then
  `finish()`; `error(err)` for a failure mid-stream (`response.failed`). Each returns the
  Responses SSE bytes to send.
- `render_error(err) -> (status, bytes)`: any `ProxyError` in OpenAI's error shape.
"""

from proxy.endpoints.openai_responses.errors import render_error
from proxy.endpoints.openai_responses.request import ResponsesRequest, parse
from proxy.endpoints.openai_responses.response import render
from proxy.endpoints.openai_responses.stream import ResponsesStream
from proxy.endpoints.openai_responses.tools import ToolRef

__all__ = ["ResponsesRequest", "ResponsesStream", "ToolRef", "parse", "render", "render_error"]
