"""FakeGemini: Google's Gemini API (AI Studio and Vertex AI, and Claude on Vertex's
`rawPredict`) on a loopback port, with Google's OAuth token endpoint beside it, and everything
`FakeUpstream` serves (OpenAI and Anthropic paths), so one fake can stand behind a suite run
over every adapter.

The same scripted steps as `FakeUpstream` (`tests.fakes.steps`), rendered in Gemini's wire
format by `gemini_wire`. `POST /token` is a service account's `token_uri`: it takes the
JWT-bearer grant Google takes (an RS256 assertion signed by the account's key, checked against
the public key of the accounts in `service_accounts`) and issues access tokens that the
Vertex paths then require.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from tests.fakes import anthropic_checks, anthropic_wire, gemini_wire
from tests.fakes.exchange import Exchange
from tests.fakes.http11 import Answer, Request, write_answer
from tests.fakes.steps import Drop, Hang, Reply
from tests.fakes.upstream import FakeUpstream, Seen

TOKEN_PATH = "/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLOUD_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"
GOOGLE_AUDIENCE = "https://oauth2.googleapis.com/token"
"""The `aud` Google requires of a service account's JWT grant, whatever the token_uri."""


@dataclass(frozen=True)
class TokenGrant:
    """One access token the fake issued: to whom, for which scope, at what time."""

    token: str
    client_email: str
    scope: str
    time: float


class FakeGemini(FakeUpstream):
    """A scripted fake of the Gemini API on 127.0.0.1 (see the module docstring).

    AI Studio requests need a key (`x-goog-api-key`); keys in `rejected_keys` get Google's
    400 API_KEY_INVALID. Vertex requests need a token this fake issued and did not revoke.
    """

    def __init__(self) -> None:
        super().__init__()
        self.service_accounts: dict[str, Any] = {}
        """client_email -> the account's public key (a `cryptography` RSA public key)."""
        self.token_lifetime = 3599
        """`expires_in` of the tokens issued (seconds)."""
        self.aliases: dict[str, str] = {}
        """client_email -> the key its tokens' requests are recorded and scripted under."""
        self.grants: list[TokenGrant] = []
        self.revoked: set[str] = set()
        self._grant_lock = threading.Lock()

    @property
    def base(self) -> str:
        """Returns: the api_base of a `gemini/` deployment (the fake serves `/v1beta`)."""
        return self.url

    @property
    def token_uri(self) -> str:
        return self.url + TOKEN_PATH

    def issued(self) -> list[TokenGrant]:
        """Returns: a copy of every token grant, in order."""
        with self._grant_lock:
            return list(self.grants)

    def _record(self, req: Request) -> tuple[Seen, int]:
        if not gemini_wire.is_gemini(req.path):
            return super()._record(req)
        key = gemini_wire.key_of(req.headers, req.query)
        with self._grant_lock:
            email = next((g.client_email for g in self.grants if g.token == key), None)
        key = self.aliases.get(email or "", key)
        seen = Seen(
            req.method, req.path, req.headers, req.json(), req.raw, key, time.monotonic(),
            req.query,
        )  # fmt: skip
        with self._lock:
            self._seen.append(seen)
            self._arrived.notify_all()
            return seen, len(self._seen)

    async def _respond(
        self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        if req.path == TOKEN_PATH:
            return await write_answer(writer, self._token(req), keep_alive=req.keep_alive)
        if not gemini_wire.is_gemini(req.path):  # OpenAI and Anthropic, as FakeUpstream
            return await super()._respond(req, reader, writer)
        seen, seq = self._record(req)
        body = seen.body if isinstance(seen.body, dict) else {}
        exchange = Exchange(req.path, body, seen.key, seq)
        claude = gemini_wire.claude_route(req.path)
        if claude is not None:
            answer, exchange = self._claude(req, seen, claude, exchange)
        else:
            answer = self._refusal(req, seen)
        chunk_delay = 0.0
        if answer is None:
            step = self._next_step(seen.key)
            if isinstance(step, Drop):
                return False
            if isinstance(step, Hang):
                with contextlib.suppress(TimeoutError):  # EOF: the client gave up
                    await asyncio.wait_for(reader.read(), step.seconds)
                return False
            if claude is not None:
                answer = anthropic_wire.render(step, exchange)
            else:
                answer = gemini_wire.render(step, exchange, req.query)
            if isinstance(step, Reply):
                chunk_delay = step.chunk_delay
                if step.delay:
                    await asyncio.sleep(step.delay)
        return await write_answer(
            writer, answer, keep_alive=req.keep_alive, chunk_delay=chunk_delay
        )

    def _claude(
        self, req: Request, seen: Seen, found: gemini_wire.Route, exchange: Exchange
    ) -> tuple[Answer | None, Exchange]:
        """Returns: Vertex's answer to a Claude request that does not reach the model (else
        None), and the exchange the Anthropic renderer answers (`model` from the path)."""
        if req.method != "POST" or found.method not in ("rawPredict", "streamRawPredict"):
            return gemini_wire.error_answer(404, f"Method not found: {found.method}."), exchange
        if not self._token_ok(_bearer(req)):
            return _invalid_token(), exchange
        body = dict(seen.body) if isinstance(seen.body, dict) else {}
        if found.model == "count-tokens":
            return anthropic_wire.count_tokens_answer(exchange), exchange
        if body.pop("anthropic_version", None) != VERTEX_ANTHROPIC_VERSION:
            message = "anthropic_version: Input should be 'vertex-2023-10-16'"
            return anthropic_wire.error_answer(exchange, 400, message), exchange
        exchange = Exchange(req.path, {**body, "model": found.model}, seen.key, exchange.seq)
        problem = anthropic_checks.problem(exchange.body)
        if problem is not None:
            return anthropic_wire.error_answer(exchange, 400, problem), exchange
        return None, exchange

    def _token_ok(self, token: str | None) -> bool:
        with self._grant_lock:
            issued = {g.token for g in self.grants} - self.revoked
        return token in issued

    def _refusal(self, req: Request, seen: Seen) -> Answer | None:
        found = gemini_wire.route(req.path)
        token = _bearer(req)
        if found is not None and found.project is not None and not self._token_ok(token):
            rejected = self.rejected_keys | ({seen.key} if seen.key else set())
            return gemini_wire.precheck(
                req.method, req.path, req.query, seen.key, seen.body, rejected
            )
        return gemini_wire.precheck(
            req.method, req.path, req.query, seen.key, seen.body, self.rejected_keys
        )

    # -- the OAuth token endpoint ----------------------------------------------------------

    def _token(self, req: Request) -> Answer:
        form = {k: v[0] for k, v in parse_qs(req.raw.decode("latin-1")).items()}
        if form.get("grant_type") != JWT_GRANT or "assertion" not in form:
            return _oauth_error("unsupported_grant_type", "Invalid grant_type.")
        claims = self._verified_claims(form["assertion"])
        if claims is None:
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        now = time.time()
        if claims.get("aud") != GOOGLE_AUDIENCE:
            return _oauth_error("invalid_grant", "Invalid JWT: Token must be for this audience.")
        if not (claims.get("iat", 0) - 300 <= now <= claims.get("exp", 0) + 300):
            return _oauth_error(
                "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes)."
            )
        if CLOUD_SCOPE not in str(claims.get("scope", "")).split():
            return _oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience.")
        with self._grant_lock:
            token = f"ya29.fake-{len(self.grants) + 1:04d}"
            self.grants.append(TokenGrant(token, str(claims["iss"]), claims["scope"], now))
        doc = {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}
        return Answer(200, {"content-type": "application/json; charset=utf-8"}, _json(doc))

    def _verified_claims(self, assertion: str) -> dict[str, Any] | None:
        """Returns: the JWT's claims when its RS256 signature is by the issuer's key."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        try:
            head, payload, signature = assertion.split(".")
            header = json.loads(_unb64(head))
            claims = json.loads(_unb64(payload))
        except ValueError:
            return None
        public = self.service_accounts.get(claims.get("iss"))
        if header.get("alg") != "RS256" or public is None:
            return None
        try:
            public.verify(
                _unb64(signature), f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            return None
        return dict(claims)


def _bearer(req: Request) -> str | None:
    scheme, _, token = req.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _invalid_token() -> Answer:
    msg = (
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
        "cookie or other valid authentication credential."
    )
    return gemini_wire.error_answer(401, msg)


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json(doc: Any) -> bytes:
    return json.dumps(doc, indent=2).encode()


def _oauth_error(error: str, description: str) -> Answer:
    body = _json({"error": error, "error_description": description})
    return Answer(400, {"content-type": "application/json; charset=utf-8"}, body)


def service_account(
    fake: FakeGemini,
    email: str = "proxy@fake-project.iam.gserviceaccount.com",
    *,
    alias: str | None = None,
) -> dict[str, Any]:
    """Returns: a new service account's JSON (with the process's one RSA key) whose token_uri
    is the fake's, its public key registered with the fake; with `alias`, requests carrying
    its tokens are recorded and scripted as if their key were `alias`."""
    from cryptography.hazmat.primitives import serialization

    key = _private_key()
    fake.service_accounts[email] = key.public_key()
    if alias is not None:
        fake.aliases[email] = alias
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": "fake-project",
        "private_key_id": "0123456789abcdef",
        "private_key": pem,
        "client_email": email,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": fake.token_uri,
    }


@functools.cache
def _private_key() -> Any:
    """One RSA key per test process (making one takes a tenth of a second)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)
