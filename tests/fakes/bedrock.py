"""FakeBedrock: bedrock-runtime's Converse and ConverseStream on 127.0.0.1, checking SigV4 as
AWS does and streaming AWS's binary event stream.

Every request's signature is recomputed with botocore from the secret of the access key it
names (the fake knows the test credentials) over the request as received, and refused with
AWS's 403 and error body when it does not match, when the key is unknown, when a temporary
key comes without its session token, or when the scope names another region or service.
Converse bodies are checked like Bedrock's ValidationException does (unknown fields, tool
blocks without toolConfig, an unknown model). Answers follow the scripted steps of
`tests.fakes.steps`; streams are event-stream messages (prelude, headers, payload, CRC32s).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import re
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.fakes import steps as st
from tests.fakes.exchange import json_pieces, long_content, pieces, prompt_words, words
from tests.fakes.http11 import Answer, Request, write_answer
from tests.fakes.upstream import FakeUpstream

EVENT_STREAM = "application/vnd.amazon.eventstream"
_ROUTE = re.compile(r"^/model/([^/]+)/(converse|converse-stream)$")
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
    r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$"
)
_TOP_LEVEL = frozenset(
    {
        "messages",
        "system",
        "inferenceConfig",
        "toolConfig",
        "guardrailConfig",
        "additionalModelRequestFields",
        "promptVariables",
        "requestMetadata",
        "additionalModelResponseFieldPaths",
        "performanceConfig",
    }
)
_INFERENCE = frozenset({"maxTokens", "temperature", "topP", "stopSequences"})
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)
_EXCEPTIONS = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


@dataclass(frozen=True)
class Key:
    """Test credentials the fake accepts: a secret, and the session token a temporary key
    must carry (None: a long-term key)."""

    secret: str
    token: str | None = None


class FakeBedrock(FakeUpstream):
    """A fake bedrock-runtime in `region` serving `models`, for the credentials in `keys`
    (access key id -> Key). `requests` records every request that passed auth (body: the
    Converse JSON; key: the access key id); `refusals` each refusal's error type."""

    def __init__(self, *, region: str, keys: dict[str, Key], models: tuple[str, ...]) -> None:
        super().__init__()
        self.region = region
        self.keys = dict(keys)
        self.models = set(models)
        self.refusals: list[str] = []

    async def _respond(
        self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        refused, key_id = self._auth(req)
        if refused is not None:
            return await write_answer(writer, refused, keep_alive=req.keep_alive)
        req.headers["authorization"] = f"Bearer {key_id}"  # the base class keys steps by it
        seen, seq = self._record(req)
        if req.method == "GET" and req.path == "/foundation-models":
            return await write_answer(writer, _json(200, {"modelSummaries": []}), keep_alive=True)
        route = _ROUTE.match(req.path)
        invalid = self._invalid(req, route, seen.body)
        if invalid is not None or route is None:
            answer = invalid or aws_error(404, "UnknownOperationException", "Unknown operation")
            return await write_answer(writer, answer, keep_alive=req.keep_alive)
        step = self._next_step(key_id)
        if isinstance(step, st.Drop):
            return False
        if isinstance(step, st.Hang):
            with contextlib.suppress(TimeoutError):  # EOF: the client gave up
                await asyncio.wait_for(reader.read(), step.seconds)
            return False
        stream = route.group(2) == "converse-stream"
        answer = render(step, seen.body, stream=stream, seq=seq)
        chunk_delay = step.chunk_delay if isinstance(step, st.Reply) else 0.0
        return await write_answer(
            writer, answer, keep_alive=req.keep_alive, chunk_delay=chunk_delay
        )

    def _auth(self, req: Request) -> tuple[Answer | None, str | None]:
        """Returns: (AWS's 403 refusal, None), or (None, the access key id) once SigV4 checks."""
        found = _AUTH.match(req.headers.get("authorization", ""))
        if found is None or "x-amz-date" not in req.headers:
            return self._refuse(
                403, "MissingAuthenticationTokenException", "Missing Authentication Token"
            ), None
        key_id, date, region, service, signed, signature = found.groups()
        key = self.keys.get(key_id)
        token = req.headers.get("x-amz-security-token")
        if key is None or token != key.token:
            message = "The security token included in the request is invalid."
            return self._refuse(403, "UnrecognizedClientException", message), None
        if (region, service) != (self.region, "bedrock"):
            message = f"Credential should be scoped to a valid region, not '{region}'."
            return self._refuse(403, "InvalidSignatureException", message), None
        if not req.headers["x-amz-date"].startswith(date) or "host" not in signed.split(";"):
            return self._refuse(403, "IncompleteSignatureException", "Bad scope"), None
        expected = _signature(
            req, signed.split(";"), Credentials(key_id, key.secret, token), region
        )
        if not hmac.compare_digest(expected, signature):
            return self._refuse(403, "InvalidSignatureException", _MISMATCH), None
        return None, key_id

    def _refuse(self, status: int, kind: str, message: str) -> Answer:
        with self._lock:
            self.refusals.append(kind)
        return aws_error(status, kind, message)

    def _invalid(self, req: Request, route: re.Match[str] | None, body: Any) -> Answer | None:
        if route is None:
            return None
        if route.group(1) not in self.models:
            return aws_error(
                400, "ValidationException", "The provided model identifier is invalid."
            )
        if not isinstance(body, dict):
            return aws_error(
                400, "SerializationException", "Start of structure or map found where not expected."
            )
        problem = converse_problem(body)
        return None if problem is None else aws_error(400, "ValidationException", problem)


def _signature(req: Request, signed: list[str], credentials: Credentials, region: str) -> str:
    """Returns: the signature AWS computes for `req` (as received) over its `signed` headers."""
    url = f"http://{req.headers['host']}{req.path}" + (f"?{req.query}" if req.query else "")
    headers = {name: req.headers[name] for name in signed if name in req.headers}
    request = AWSRequest(method=req.method, url=url, data=req.raw, headers=headers)
    request.context["timestamp"] = req.headers["x-amz-date"]
    signer = SigV4Auth(credentials, "bedrock", region)
    canonical = signer.canonical_request(request)
    return signer.signature(signer.string_to_sign(request, canonical), request)


def converse_problem(body: dict[str, Any]) -> str | None:
    """Returns: the ValidationException message Bedrock gives for this Converse body, or None."""
    extra = sorted(set(body) - _TOP_LEVEL)
    if extra:
        return f"Malformed input request: extraneous key [{extra[0]}] is not permitted"
    unknown = sorted(set(body.get("inferenceConfig") or {}) - _INFERENCE)
    if unknown:
        return f"Malformed input request: extraneous key [{unknown[0]}] is not permitted"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return (
            "A conversation must start with a user message. Try again with a conversation "
            "that starts with a user message."
        )
    roles = [m.get("role") for m in messages]
    if roles[0] != "user" or any(a == b for a, b in zip(roles, roles[1:], strict=False)):
        return "A conversation must alternate between user and assistant roles."
    blocks = [b for m in messages for b in m.get("content") or []]
    if any(not m.get("content") for m in messages):
        return "The content field in the Message object is empty."
    tools = any("toolUse" in b or "toolResult" in b for b in blocks)
    if tools and "toolConfig" not in body:
        return (
            "The toolConfig field must be defined when using toolUse and toolResult content blocks."
        )
    return None


def aws_error(status: int, kind: str, message: str) -> Answer:
    """Returns: an AWS JSON error: `x-amzn-ErrorType` and `{"message": ...}`."""
    headers = {
        "content-type": "application/json",
        "x-amzn-requestid": _request_id(0),
        "x-amzn-errortype": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
    }
    return Answer(status, headers, json.dumps({"message": message}).encode())


def render(step: st.Step, body: dict[str, Any], *, stream: bool, seq: int) -> Answer:
    """Returns: the answer to `step` for a Converse body, as JSON or as an event stream."""
    match step:
        case st.Reply():
            return _stream(step, body, seq) if stream else _json(200, _answer(step, body))
        case st.Error(status, message, kind, _code, headers):
            answer = aws_error(
                status, kind or _EXCEPTIONS.get(status, "InternalServerException"), message
            )
            answer.headers.update(dict(headers))
            return answer
        case st.RateLimit():
            return aws_error(
                429, "ThrottlingException", "Too many requests, please wait before trying again."
            )
        case st.Overloaded():
            return aws_error(
                503, "ServiceUnavailableException", "Bedrock is unable to process your request."
            )
        case st.ContextTooLong():
            return aws_error(400, "ValidationException", "Input is too long for requested model.")
        case st.StreamCut(after):
            answer = _stream(st.Reply(content=long_content(after)), body, seq)
            answer.cut_after = 1 + after  # messageStart, then `after` text deltas
            return answer
        case st.StreamErrorFirst(message):
            event = message_bytes(
                {
                    ":exception-type": "throttlingException",
                    ":content-type": "application/json",
                    ":message-type": "exception",
                },
                {"message": message},
            )
            return Answer(200, {"content-type": EVENT_STREAM}, events=[event])
    raise TypeError(f"the fake Bedrock does not render {step!r}")


def _calls(step: st.Reply, body: dict[str, Any], seq: int) -> list[dict[str, Any]]:
    if not step.tool_calls or "toolConfig" not in body:
        return []
    return [
        {
            "toolUseId": call.get("id") or f"tooluse_fake{seq:04d}{i:02d}",
            "name": call["name"],
            "input": call.get("arguments") or {},
        }
        for i, call in enumerate(step.tool_calls)
    ]


def _usage(step: st.Reply, body: dict[str, Any]) -> dict[str, int]:
    over = step.usage or {}
    prompt = int(over.get("input_tokens", over.get("prompt_tokens", prompt_words(body))))
    output = int(over.get("output_tokens", over.get("completion_tokens", words(step.text()))))
    return {"inputTokens": prompt, "outputTokens": output, "totalTokens": prompt + output}


def _stop(step: st.Reply, calls: list[dict[str, Any]]) -> str:
    return step.finish_reason or ("tool_use" if calls else "end_turn")


def _answer(step: st.Reply, body: dict[str, Any]) -> dict[str, Any]:
    calls = _calls(step, body, 0)
    content: list[dict[str, Any]] = [{"text": step.text()}] if step.text() else []
    content += [{"toolUse": call} for call in calls]
    return {
        "metrics": {"latencyMs": 42},
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": _stop(step, calls),
        "usage": _usage(step, body),
    }


def _stream(step: st.Reply, body: dict[str, Any], seq: int) -> Answer:
    calls = _calls(step, body, seq)
    events = [_event("messageStart", {"role": "assistant"})]
    text = step.text()
    if text:
        events += [
            _event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}})
            for piece in pieces(text)
        ]
        events.append(_event("contentBlockStop", {"contentBlockIndex": 0}))
    for index, call in enumerate(calls, start=1 if text else 0):
        start = {"toolUse": {"toolUseId": call["toolUseId"], "name": call["name"]}}
        events.append(_event("contentBlockStart", {"contentBlockIndex": index, "start": start}))
        events += [
            _event(
                "contentBlockDelta",
                {"contentBlockIndex": index, "delta": {"toolUse": {"input": part}}},
            )
            for part in json_pieces(call["input"])
        ]
        events.append(_event("contentBlockStop", {"contentBlockIndex": index}))
    events.append(_event("messageStop", {"stopReason": _stop(step, calls)}))
    events.append(_event("metadata", {"usage": _usage(step, body), "metrics": {"latencyMs": 42}}))
    headers = {"content-type": EVENT_STREAM, "x-amzn-requestid": _request_id(seq)}
    return Answer(200, headers, events=events)


def _event(name: str, payload: dict[str, Any]) -> bytes:
    # Bedrock pads each event with a `p` field of varying length (against length analysis).
    padded = {**payload, "p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"[: 4 + len(name)]}
    headers = {":event-type": name, ":content-type": "application/json", ":message-type": "event"}
    return message_bytes(headers, padded)


def message_bytes(headers: dict[str, str], payload: dict[str, Any]) -> bytes:
    """Returns: one event-stream message: total and headers lengths, the prelude's CRC32, the
    headers (each a name, type 7 = string, and a value), the payload, the message's CRC32."""
    head = b"".join(
        struct.pack("!B", len(name))
        + name.encode()
        + struct.pack("!BH", 7, len(value))
        + value.encode()
        for name, value in headers.items()
    )
    data = json.dumps(payload, separators=(",", ":")).encode()
    prelude = struct.pack("!II", 12 + len(head) + len(data) + 4, len(head))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    message = prelude + head + data
    return message + struct.pack("!I", zlib.crc32(message))


def _json(status: int, doc: dict[str, Any]) -> Answer:
    headers = {"content-type": "application/json", "x-amzn-requestid": _request_id(0)}
    return Answer(status, headers, json.dumps(doc).encode())


def _request_id(seq: int) -> str:
    return f"00000000-0000-4000-8000-{seq:012d}"
