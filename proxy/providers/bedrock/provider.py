"""The Bedrock adapter: OpenAI chat ⇄ Converse (`POST /model/{id}/converse`) and ConverseStream
(`/converse-stream`), each request signed with AWS Signature Version 4 by botocore's signer.

Signing is CPU only (an HMAC chain over the request), so it happens here, in `build_request`;
the credentials were resolved when the config loaded (`proxy.config.cloud`). botocore is the
`[aws]` extra, imported only when a Bedrock deployment is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from proxy.config.model_limits import output_limit
from proxy.config.types import Deployment
from proxy.errors import NotImplementedByProvider, UpstreamError
from proxy.providers.bedrock import errors as bedrock_errors
from proxy.providers.bedrock.answer import ConverseStreamDecoder, parse_response
from proxy.providers.bedrock.converse import converse_body
from proxy.providers.defaults import drops_params, with_defaults
from proxy.schema import ChatRequest, ChatResponse, UpstreamRequest, dumps

SERVICE = "bedrock"
"""The SigV4 signing name of both bedrock-runtime (Converse) and the bedrock control plane."""
_ROUTE_PREFIXES = ("converse/", "invoke/")
"""LiteLLM's route markers in `bedrock/converse/<model>`; every model is called by Converse."""
EVENT_STREAM = "application/vnd.amazon.eventstream"


class BedrockProvider:
    """Speaks Bedrock's Converse API for an OpenAI client. Pure but for the signing clock."""

    wire = "bedrock"
    forwarded_headers: tuple[str, ...] = ()
    native_wire: str | None = None
    local = None

    def build_request(self, req: ChatRequest, dep: Deployment) -> UpstreamRequest:
        """Returns the signed Converse (or ConverseStream) request for `req` on `dep`.

        Raises:
            BadRequest: a parameter Converse lacks that changes the answer's shape (unless
                drop_params), or content that cannot be translated.
            NotImplementedByProvider: embeddings or legacy completions.
        """
        if req.kind != "chat":
            raise NotImplementedByProvider(f"Bedrock Converse does not serve /{req.kind}.")
        model = model_id(dep.upstream_model(req.model))
        body = converse_body(
            with_defaults(req.body, dep),
            model,
            drop_params=drops_params(req.drop_params, dep),
            max_output=output_limit(dep, model),
        )
        action = "converse-stream" if req.stream else "converse"
        # ':' stays as is: aiohttp sends it unescaped, and the signature covers the path sent.
        url = f"{dep.api_base}/model/{quote(model, safe=':')}/{action}"
        accept = EVENT_STREAM if req.stream else "application/json"
        headers = {"content-type": "application/json", "accept": accept, **dep.extra_headers}
        content = dumps(body)
        return UpstreamRequest("POST", url, sign(dep, "POST", url, headers, content), content)

    def parse_response(self, req: ChatRequest, dep: Deployment, body: bytes) -> ChatResponse:
        """Returns the OpenAI `chat.completion` for a 2xx Converse body.

        Raises:
            UpstreamError: the body is not a Converse answer (502, retryable).
        """
        return parse_response(dep, body, created=req.created, answer_id=_answer_id(req))

    def open_stream(self, req: ChatRequest, dep: Deployment) -> ConverseStreamDecoder:
        """Returns a fresh decoder for one ConverseStream event stream."""
        return ConverseStreamDecoder(dep, created=req.created, answer_id=_answer_id(req))

    def classify_error(
        self, dep: Deployment, status: int, headers: Mapping[str, str], body: bytes
    ) -> UpstreamError:
        """Returns what a non-2xx Bedrock answer means (see `bedrock.errors`)."""
        return bedrock_errors.classify_error(dep, status, headers, body)

    def probe_request(self, dep: Deployment) -> UpstreamRequest:
        """Returns the signed `GET /foundation-models` of the region's control plane: free,
        and refused (403) for credentials that do not work."""
        base = dep.api_base.replace("://bedrock-runtime.", "://bedrock.", 1)
        url = base + "/foundation-models"
        headers = {"accept": "application/json", **dep.extra_headers}
        return UpstreamRequest("GET", url, sign(dep, "GET", url, headers, b""))


def model_id(upstream: str) -> str:
    """Returns the Bedrock model id for the name after `bedrock/` (route markers removed)."""
    for prefix in _ROUTE_PREFIXES:
        if upstream.startswith(prefix):
            return upstream[len(prefix) :]
    return upstream


def sign(
    dep: Deployment, method: str, url: str, headers: Mapping[str, str], body: bytes
) -> dict[str, str]:
    """Returns `headers` plus the SigV4 ones (`authorization`, `x-amz-date`, and
    `x-amz-security-token` for temporary credentials), for `dep`'s credentials and region."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    creds = dep.credentials
    credentials = Credentials(
        creds["aws_access_key_id"].reveal(),
        creds["aws_secret_access_key"].reveal(),
        creds["aws_session_token"].reveal() if "aws_session_token" in creds else None,
    )
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    SigV4Auth(credentials, SERVICE, dep.provider_params["aws_region_name"]).add_auth(request)
    return {name.lower(): value for name, value in request.headers.items()}


def _answer_id(req: ChatRequest) -> str:
    return f"chatcmpl-{req.request_id}" if req.request_id else "chatcmpl-bedrock"
