#!/usr/bin/env python3
"""claimsengine next to its peers: a client_credentials token request, in-process, one run.

Every row is timed in the same interleaved, shuffled rounds, so machine drift cancels out
of the ratios (medians of per-round ratios). See bench/README.md for what each row means.

Contracts (same semantics for every peer: authenticate client_secret_post with a
constant-time compare, find the API by audience, find the client grant, intersect the
requested scopes with the granted ones, issue a token):

  A  decision only      prebuilt request in, decision out, no token generator
                        (claimsengine: TokenRequest -> decide -> Issued)
  B  parsed dict -> dict  each side's own opaque token generator
                        (claimsengine: wire.token_request -> decide -> Minter opaque -> success_body)
  C  form body -> JSON  RS256 JWT, expressed as x raw RS256 sign
                        (claimsengine: wire.form_pairs, as serve parses -> wire -> decide -> Minter.access_token -> json.dumps)

Run from the repository root:
  .venv/bin/python bench/bench_decide.py [--quick] [--full] [--json bench/results/run.json]
"""

from __future__ import annotations

import argparse
import contextvars
import gc
import hmac
import json
import os
import platform
import random
import secrets
import statistics
import string
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

DOMAIN = "auth.example.com"
ISSUER = f"https://{DOMAIN}/"
TOKEN_URL = f"{ISSUER}oauth/token"
N_APIS = 10
SCOPES_PER_API = 8
GRANTED_PER_CLIENT = 5
DISTINCT_REQUESTS = 1024
LIFETIME = 86400
CONST_TOKEN = "T" * 43  # as long as secrets.token_urlsafe(32)
KEY_SEED = 20240607
DATA_SEED = 4242
REQUEST_SEED = 77
ORDER_SEED = 13
TIMES, DASH = "\u00d7", "\u2013"  # for the Markdown table

A, B, C = "A decision only", "B parsed dict -> dict", "C form body -> JSON"
FLOOR, AUTHLIB, RAW, ENGINE = "floor", "authlib", "raw-sign", "claimsengine"


# ---------------------------------------------------------------------------------------
# Data: one deterministic world, seen by every peer through its own data structures
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiSpec:
    identifier: str
    scopes: tuple[str, ...]
    lifetime: int = LIFETIME


@dataclass(frozen=True, slots=True)
class Request:
    client_id: str
    secret: str
    audience: str
    scope: str  # what is asked for
    expected: str  # what every peer must grant

    def params(self) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.secret,
            "audience": self.audience,
            "scope": self.scope,
        }


@dataclass(slots=True)
class World:
    n_clients: int
    apis: dict[str, ApiSpec]
    secrets: dict[str, str]  # client_id -> secret
    grants: dict[tuple[str, str], tuple[str, ...]]  # (client_id, audience) -> granted scopes, sorted
    requests: list[Request] = field(default_factory=list)


def make_world(n_clients: int) -> World:
    rnd = random.Random(DATA_SEED)  # noqa: S311 - reproducible test data, not secrets
    alphabet = string.ascii_letters + string.digits
    apis = {}
    for j in range(N_APIS):
        identifier = f"https://api{j}.example.com/"
        scopes = tuple(f"{verb}:thing{j}_{k}" for k in range(SCOPES_PER_API // 2) for verb in ("read", "write"))
        apis[identifier] = ApiSpec(identifier, scopes)
    audiences = list(apis)
    client_secrets: dict[str, str] = {}
    grants: dict[tuple[str, str], tuple[str, ...]] = {}
    for i in range(n_clients):
        cid = "".join(rnd.choice(alphabet) for _ in range(32))
        client_secrets[cid] = "".join(rnd.choice(alphabet) for _ in range(64))
        audience = audiences[i % N_APIS]
        grants[(cid, audience)] = tuple(sorted(rnd.sample(apis[audience].scopes, GRANTED_PER_CLIENT)))
    world = World(n_clients, apis, client_secrets, grants)
    # Each request asks for 2 of the client's 5 granted scopes, in grant order. Auth0
    # (and claimsengine, R31) rejects a request naming a scope that was not granted, so
    # the request shape is one on which "intersect" and "honour the subset" agree.
    rnd = random.Random(REQUEST_SEED)  # noqa: S311 - reproducible test data
    for cid, audience in rnd.sample(list(grants), min(DISTINCT_REQUESTS, len(grants))):
        granted = grants[(cid, audience)]
        asked = sorted(rnd.sample(granted, 2))
        world.requests.append(Request(cid, client_secrets[cid], audience, " ".join(asked), " ".join(asked)))
    return world


@dataclass(frozen=True, slots=True)
class Keys:
    """One RSA key for everybody: claimsengine's KeySet, exported for the peers."""

    keyset: Any  # claimsengine.adapters.signing.KeySet
    private: Any  # cryptography RSAPrivateKey
    kid: str
    jwks: dict[str, Any]


def make_keys() -> Keys:
    from joserfc.jwk import RSAKey

    from claimsengine.adapters.signing import KeySet

    keyset = KeySet.generate(seed=KEY_SEED)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "keys.json")
        keyset.save(path)
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    current = next(k for k in document["keys"] if k["status"] == "current")
    fields = {k: v for k, v in current.items() if k not in ("status", "kid", "alg", "use")}
    private = RSAKey.import_key(fields).private_key
    return Keys(keyset, private, keyset.current_kid, keyset.jwks())


# ---------------------------------------------------------------------------------------
# Peers. Each builder returns a callable taking one prepared input.
# ---------------------------------------------------------------------------------------

JSON_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store", "Pragma": "no-cache"}


def build_floor(world: World, keys: Keys, contract: str) -> Callable[[Any], Any]:
    """The five steps as straight-line Python: what the decision costs with no framework."""
    apis, client_secrets, grants = world.apis, world.secrets, world.grants
    compare = hmac.compare_digest
    if contract == C:
        import jwt as pyjwt

        private, header = keys.private, {"kid": keys.kid}

    def fail(status: int, error: str) -> tuple[int, Any, dict[str, str]]:
        body = {"error": error}
        return status, (json.dumps(body) if contract == C else body), JSON_HEADERS

    def run(form: Any) -> tuple[int, Any, dict[str, str]]:
        if contract == C:
            form = dict(parse_qsl(form, keep_blank_values=True))
        if form.get("grant_type") != "client_credentials":
            return fail(400, "unsupported_grant_type")
        cid = form.get("client_id")
        secret = client_secrets.get(cid)
        if secret is None or not compare(secret, form.get("client_secret", "")):
            return fail(401, "invalid_client")
        api = apis.get(form.get("audience"))
        if api is None:
            return fail(403, "access_denied")
        granted = grants.get((cid, api.identifier))
        if granted is None:
            return fail(403, "access_denied")
        requested = form.get("scope")
        scopes = [s for s in requested.split() if s in granted] if requested else list(granted)
        if not scopes:
            return fail(403, "access_denied")
        scope = " ".join(scopes)
        if contract == A:
            token = CONST_TOKEN
        elif contract == B:
            token = secrets.token_urlsafe(32)
        else:
            now = int(time.time())
            claims = {
                "iss": ISSUER,
                "sub": f"{cid}@clients",
                "aud": api.identifier,
                "iat": now,
                "exp": now + api.lifetime,
                "scope": scope,
                "gty": "client-credentials",
                "azp": cid,
            }
            token = pyjwt.encode(claims, private, algorithm="RS256", headers=header)
        body = {"access_token": token, "scope": scope, "expires_in": api.lifetime, "token_type": "Bearer"}
        return 200, (json.dumps(body) if contract == C else body), JSON_HEADERS

    return run


def build_authlib(world: World, keys: Keys, contract: str) -> Callable[[Any], Any]:
    """Authlib's framework-agnostic AuthorizationServer with a ClientCredentialsGrant subclass."""
    from authlib.common.security import generate_token
    from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, OAuth2Request
    from authlib.oauth2.rfc6749.errors import AccessDeniedError, InvalidRequestError, InvalidScopeError
    from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
    from authlib.oauth2.rfc6749.hooks import hooked
    from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
    from authlib.oauth2.rfc6750 import BearerTokenGenerator

    apis, grants = world.apis, world.grants
    api_var: contextvars.ContextVar[ApiSpec] = contextvars.ContextVar("api")

    class BenchClient(ClientMixin):
        __slots__ = ("client_id", "secret")

        def __init__(self, client_id: str, secret: str) -> None:
            self.client_id = client_id
            self.secret = secret

        def get_client_id(self) -> str:
            return self.client_id

        def get_default_redirect_uri(self) -> None:
            return None

        def get_allowed_scope(self, scope: str) -> str:
            return scope

        def check_redirect_uri(self, redirect_uri: str) -> bool:
            return False

        def check_client_secret(self, client_secret: str) -> bool:
            return hmac.compare_digest(self.secret, client_secret)

        def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
            return method == "client_secret_post"

        def check_response_type(self, response_type: str) -> bool:
            return False

        def check_grant_type(self, grant_type: str) -> bool:
            return grant_type == "client_credentials"

    # Model objects built once, like an ORM identity map: query_client is a dict hit.
    models = {cid: BenchClient(cid, secret) for cid, secret in world.secrets.items()}

    class FormRequest(OAuth2Request):
        def __init__(self, form: dict[str, str]) -> None:
            super().__init__("POST", TOKEN_URL, headers={"Content-Type": "application/x-www-form-urlencoded"})
            self._form = form
            self.payload = BasicOAuth2Payload(form)

        @property
        def form(self) -> dict[str, str]:
            return self._form

        @property
        def args(self) -> dict[str, str]:
            return {}

    class Server(AuthorizationServer):
        def query_client(self, client_id: str) -> BenchClient | None:
            return models.get(client_id)

        def save_token(self, token: dict[str, Any], request: Any) -> None:
            pass  # persistence is backend-specific: excluded for every peer

        def create_oauth2_request(self, request: Any) -> FormRequest:
            form = dict(parse_qsl(request, keep_blank_values=True)) if contract == C else request
            return FormRequest(form)

        def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, Any, Any]:
            return status, (json.dumps(body) if contract == C else body), headers

        def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
            pass

    class Auth0Style(ClientCredentialsGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_post"]  # noqa: RUF012 - Authlib's own idiom

        def validate_token_request(self) -> None:
            super().validate_token_request()
            data = self.request.payload.data
            api = apis.get(data.get("audience"))
            if api is None:
                raise InvalidRequestError("unknown audience")
            granted = grants.get((self.request.client.client_id, api.identifier))
            if granted is None:
                raise AccessDeniedError("no client grant")
            requested = data.get("scope")
            scopes = [s for s in requested.split() if s in granted] if requested else list(granted)
            if not scopes:
                raise InvalidScopeError()
            self._api = api
            self._scope = " ".join(scopes)

        @hooked
        def create_token_response(self) -> tuple[int, Any, Any]:
            api_var.set(self._api)
            token = self.generate_token(scope=self._scope, expires_in=self._api.lifetime, include_refresh_token=False)
            self.save_token(token)
            return 200, token, self.TOKEN_RESPONSE_HEADER

    server = Server()
    server.register_grant(Auth0Style)
    generator: BearerTokenGenerator
    if contract == C:
        from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
        from joserfc.jwk import KeySet, RSAKey

        jwk_set = KeySet([RSAKey.import_key(keys.private, {"kid": keys.kid, "use": "sig", "alg": "RS256"})])

        class Auth0JWT(JWTBearerTokenGenerator):
            def get_jwks(self) -> KeySet:
                return jwk_set  # imported once, not per token

            def get_audiences(self, client: Any, user: Any, scope: str) -> str:
                return api_var.get().identifier

            def get_extra_claims(self, client: Any, grant_type: str, user: Any, scope: str) -> dict[str, str]:
                cid = client.get_client_id()
                return {"sub": f"{cid}@clients", "azp": cid, "gty": "client-credentials"}

        generator = Auth0JWT(ISSUER, alg="RS256", expires_generator=lambda client, grant_type: api_var.get().lifetime)
    elif contract == B:
        generator = BearerTokenGenerator(lambda **kw: generate_token(42))  # as Authlib's Flask/Django integrations
    else:
        generator = BearerTokenGenerator(lambda **kw: CONST_TOKEN)
    server.register_token_generator("default", generator)
    return server.create_token_response


def build_raw_sign(world: World, keys: Keys, contract: str) -> Callable[[Any], Any]:
    """Only the RS256 signature (cryptography) of a claimsengine token's real signing input."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    signing_input = _sample_signing_input(world, keys)
    private, pad, digest = keys.private, padding.PKCS1v15(), hashes.SHA256()

    def run(_: Any) -> bytes:
        return private.sign(signing_input, pad, digest)

    return run


def _sample_signing_input(world: World, keys: Keys) -> bytes:
    import base64

    def b64(data: dict[str, Any]) -> bytes:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=")

    req = world.requests[0]
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": f"{req.client_id}@clients",
        "aud": req.audience,
        "iat": now,
        "exp": now + LIFETIME,
        "scope": req.expected,
        "gty": "client-credentials",
        "azp": req.client_id,
    }
    return b64({"alg": "RS256", "typ": "JWT", "kid": keys.kid}) + b"." + b64(claims)


_TENANTS: dict[int, Any] = {}


def engine_tenant(world: World) -> Any:
    """The world as a claimsengine Tenant (built once per size; its index is compiled here)."""
    if world.n_clients in _TENANTS:
        return _TENANTS[world.n_clients]
    from pydantic import SecretStr

    from claimsengine import Api, AuthMethod, Behaviour, Client, ClientGrant, Tenant

    tenant = Tenant(
        domain=DOMAIN,
        apis=tuple(Api(identifier=a.identifier, scopes=a.scopes, token_lifetime=a.lifetime) for a in world.apis.values()),
        clients=tuple(
            Client(
                client_id=cid,
                client_secrets=(SecretStr(secret),),
                token_endpoint_auth_method=AuthMethod.CLIENT_SECRET_POST,
                grant_types=("client_credentials",),
            )
            for cid, secret in world.secrets.items()
        ),
        client_grants=tuple(ClientGrant(client_id=cid, audience=aud, scope=scopes) for (cid, aud), scopes in world.grants.items()),
        # Auth0 returns every granted scope for client_credentials; the peers intersect.
        # This switch makes claimsengine honour the requested subset, so all agree.
        behaviour=Behaviour(client_credentials_scopes="requested"),
    )
    _ = tenant.index  # compile outside the timed region, as a server would at start-up
    _TENANTS[world.n_clients] = tenant
    return tenant


def build_engine(world: World, keys: Keys, contract: str, tenant: Any = None) -> Callable[[Any], Any]:
    """claimsengine's row of ``contract``, on ``tenant`` (default: the world's, as engine_tenant builds it)."""
    from claimsengine import Issued, TokenFormat, decide
    from claimsengine.adapters import wire
    from claimsengine.adapters.signing import Minter

    tenant = tenant if tenant is not None else engine_tenant(world)
    clock = time.time
    if contract == A:

        def decision(request: Any) -> Any:
            return decide(request, tenant, now=int(clock()))

        return decision

    minter = Minter(tenant, keys.keyset)
    token_request, success_body, error_body = wire.token_request, wire.success_body, wire.error_body
    if contract == B:
        opaque = TokenFormat.OPAQUE

        def dict_to_dict(params: dict[str, str]) -> tuple[int, dict[str, Any]]:
            outcome = decide(token_request(params, domain=DOMAIN), tenant, now=int(clock()))
            if not isinstance(outcome, Issued):
                return outcome.status, error_body(outcome)
            # client_credentials with an API audience is always a JWT in Auth0; to mint
            # claimsengine's opaque form (a sealed JWE) we relabel the decision's format.
            sealed = minter.access_token(outcome.model_copy(update={"format": opaque}))
            return 200, success_body(outcome, sealed)

        return dict_to_dict

    dumps = json.dumps
    # The form body is split as `serve` splits it (wire.form_pairs gives parse_qsl's pairs, a
    # property in tests/test_wire.py); the peers and the floor keep parse_qsl.
    from claimsengine.adapters.server import MAX_FORM_FIELDS

    form_pairs, parameters = wire.form_pairs, wire.Parameters

    def body_to_json(body: str) -> tuple[int, str]:
        params = parameters(form_pairs(body, MAX_FORM_FIELDS))
        outcome = decide(token_request(params, domain=DOMAIN), tenant, now=int(clock()))
        if not isinstance(outcome, Issued):
            return outcome.status, dumps(error_body(outcome))
        return 200, dumps(success_body(outcome, minter.access_token(outcome)))

    return body_to_json


def build_engine_cheap_token(world: World, keys: Keys, contract: str) -> Callable[[Any], Any]:
    """Extra row: claimsengine's dict -> dict with secrets.token_urlsafe(32), like the floor."""
    from claimsengine import Issued, decide
    from claimsengine.adapters import wire

    tenant = engine_tenant(world)
    token_request, success_body, error_body = wire.token_request, wire.success_body, wire.error_body
    clock = time.time

    def dict_to_dict(params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        outcome = decide(token_request(params, domain=DOMAIN), tenant, now=int(clock()))
        if not isinstance(outcome, Issued):
            return outcome.status, error_body(outcome)
        return 200, success_body(outcome, secrets.token_urlsafe(32))

    return dict_to_dict


# (contract, role, label, builder)
ROWS: list[tuple[str, str, str, Callable[[World, Keys, str], Callable[[Any], Any]]]] = [
    (A, FLOOR, "floor: straight-line, constant token", build_floor),
    (A, AUTHLIB, "authlib AuthorizationServer, constant token", build_authlib),
    (A, ENGINE, "claimsengine: TokenRequest -> decide -> Issued", build_engine),
    (B, FLOOR, "floor: straight-line + secrets.token_urlsafe(32)", build_floor),
    (B, AUTHLIB, "authlib AuthorizationServer + generate_token(42)", build_authlib),
    (B, ENGINE, "claimsengine: wire -> decide -> Minter opaque (JWE) -> success_body", build_engine),
    (B, ENGINE + "-cheap", "claimsengine (extra): wire -> decide -> secrets.token_urlsafe -> success_body", build_engine_cheap_token),
    (C, RAW, "reference: raw RS256 sign (cryptography)", build_raw_sign),
    (C, FLOOR, "floor: parse_qsl + straight-line + PyJWT", build_floor),
    (C, AUTHLIB, "authlib AuthorizationServer + rfc9068 JWT", build_authlib),
    (C, ENGINE, "claimsengine: wire.form_pairs -> wire -> decide -> Minter JWT -> json.dumps", build_engine),
]


def inputs_for(world: World, contract: str, role: str) -> list[Any]:
    if contract == A and role == ENGINE:
        from claimsengine.adapters import wire

        return [wire.token_request(r.params(), domain=DOMAIN) for r in world.requests]
    if contract == C:
        return [urlencode(r.params()) for r in world.requests]
    return [r.params() for r in world.requests]


# ---------------------------------------------------------------------------------------
# Correctness, before any timing
# ---------------------------------------------------------------------------------------


def outcome_of(result: Any) -> tuple[int, dict[str, Any]]:
    """(status, body) from any peer's answer."""
    from claimsengine import Issued, Rejected

    if isinstance(result, Issued):
        return 200, {"access_token": None, "scope": result.scope, "expires_in": result.expires_in, "claims": result.claims}
    if isinstance(result, Rejected):
        return result.status, {"error": result.error.value}
    status, body = result[0], result[1]
    return status, (json.loads(body) if isinstance(body, str) else body)


def check_row(run: Callable[[Any], Any], world: World, keys: Keys, contract: str, role: str) -> None:
    import jwt as pyjwt

    from claimsengine.adapters import wire

    req = world.requests[0]
    jwk = pyjwt.PyJWKSet.from_dict(keys.jwks)[keys.kid]

    def prepared(params: dict[str, str]) -> Any:
        if contract == A and role == ENGINE:
            return wire.token_request(params, domain=DOMAIN)
        return urlencode(params) if contract == C else params

    status, body = outcome_of(run(prepared(req.params())))
    assert status == 200, (contract, role, status, body)
    assert body["scope"] == req.expected, (contract, role, body["scope"], req.expected)
    assert body["expires_in"] == LIFETIME, body
    token = body["access_token"]
    claims: dict[str, Any] | None = None
    if contract == A and role == ENGINE:
        claims = body["claims"]
    elif contract == B and role == ENGINE:
        from claimsengine.adapters.signing import Minter

        claims = Minter(engine_tenant(world), keys.keyset).read_opaque(token)
    elif contract == C:
        claims = pyjwt.decode(token, jwk.key, algorithms=["RS256"], audience=req.audience, issuer=ISSUER)
    else:
        assert isinstance(token, str), token
        assert len(token) >= 32, token
    if claims is not None:
        for name, value in (
            ("sub", f"{req.client_id}@clients"),
            ("azp", req.client_id),
            ("aud", req.audience),
            ("iss", ISSUER),
            ("scope", req.expected),
            ("gty", "client-credentials"),
        ):
            assert claims[name] == value, (contract, role, name, claims)
        assert claims["exp"] - claims["iat"] == LIFETIME, claims
    wrong_secret = {**req.params(), "client_secret": "x" * 64}
    unknown_audience = {**req.params(), "audience": "https://nowhere.example.com/"}
    for bad, what in ((wrong_secret, "wrong secret"), (unknown_audience, "unknown audience")):
        status, body = outcome_of(run(prepared(bad)))
        assert 400 <= status < 500, f"{contract} / {role}: {what} answered {status} {body}"


# ---------------------------------------------------------------------------------------
# Timing: interleaved shuffled rounds, medians of per-round ratios
# ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Cell:
    contract: str
    role: str
    label: str
    clients: int
    run: Callable[[Any], Any]
    inputs: list[Any]
    batch: int = 0
    samples: list[float] = field(default_factory=list)


# Wall time by default. On a shared machine (load above the core count) a batch's wall time
# includes the time the process waited for a core; --clock cpu times the thread's own CPU
# time instead (time.thread_time_ns), which leaves out the waiting but not cache contention.
CLOCKS: dict[str, Callable[[], int]] = {"wall": time.perf_counter_ns, "cpu": time.thread_time_ns}
BATCH_CLOCK = CLOCKS["wall"]


def batch_us(run: Callable[[Any], Any], inputs: list[Any], n: int) -> float:
    m = len(inputs)
    clock = BATCH_CLOCK
    start = clock()
    for i in range(n):
        run(inputs[i % m])
    return (clock() - start) / n / 1000.0


def calibrate(cell: Cell, batch_s: float, warmup_s: float) -> int:
    m, n = len(cell.inputs), 0
    start = time.perf_counter()
    while n < 20 or time.perf_counter() - start < warmup_s:
        cell.run(cell.inputs[n % m])
        n += 1
    per_call = (time.perf_counter() - start) / n
    return max(10, int(batch_s / per_call))


def load() -> str:
    """The 1, 5 and 15 minute load averages, as uptime prints them."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def median_ratio(a: Cell, b: Cell) -> float:
    return statistics.median(x / y for x, y in zip(a.samples, b.samples, strict=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run, about a minute (fewer, shorter rounds)")
    parser.add_argument("--full", action="store_true", help="also 100,000 clients")
    parser.add_argument("--sizes", help="comma-separated client counts (overrides --full)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 25, --quick 6)")
    parser.add_argument("--json", metavar="PATH", help="write raw per-round samples here")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="time batches by wall or thread CPU time")
    args = parser.parse_args()
    global BATCH_CLOCK
    BATCH_CLOCK = CLOCKS[args.clock]
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [10, 10_000, *([100_000] if args.full else [])]
    rounds = args.rounds or (6 if args.quick else 25)
    batch_s, warmup_s = (0.02, 0.05) if args.quick else (0.05, 0.2)

    print(
        f"# bench_decide: python {platform.python_version()}, {platform.machine()}, nproc {os.cpu_count()}, "
        f"{rounds} rounds x ~{batch_s * 1000:.0f} ms per cell, {args.clock} clock, GC on, "
        f"requests rotate over up to {DISTINCT_REQUESTS} clients; load average {load()}"
    )
    keys = make_keys()
    cells: list[Cell] = []
    for n in sizes:
        t0 = time.perf_counter()
        world = make_world(n)
        engine_tenant(world)
        print(f"# {n:,} clients: world + claimsengine tenant built in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        for contract, role, label, builder in ROWS:
            run = builder(world, keys, contract)
            if role != RAW:
                check_row(run, world, keys, contract, role)
            cells.append(Cell(contract, role, label, n, run, inputs_for(world, contract, role)))
    print(f"# correctness checked for {len(cells)} cells: 200 + intersected scope (+ verified claims), 4xx on bad input", file=sys.stderr)
    gc.collect()
    for cell in cells:
        cell.batch = calibrate(cell, batch_s, warmup_s)
    order = list(range(len(cells)))
    shuffler = random.Random(ORDER_SEED)  # noqa: S311 - reproducible order
    for r in range(rounds):
        shuffler.shuffle(order)
        for i in order:
            cell = cells[i]
            cell.samples.append(batch_us(cell.run, cell.inputs, cell.batch))
        print(f"  round {r + 1}/{rounds}", end="\r", file=sys.stderr)
    print(file=sys.stderr)
    print(f"# load average at the end: {load()}")

    by_key = {(c.contract, c.role, c.clients): c for c in cells}
    results = []
    for cell in cells:

        def against(role: str, cell: Cell = cell) -> float | None:
            ref = by_key.get((cell.contract, role, cell.clients))
            return None if ref is None or ref is cell else median_ratio(cell, ref)

        results.append(
            {
                "contract": cell.contract,
                "role": cell.role,
                "peer": cell.label,
                "clients": cell.clients,
                "median_us": statistics.median(cell.samples),
                "min_us": min(cell.samples),
                "max_us": max(cell.samples),
                "x_floor": against(FLOOR),
                "x_authlib": against(AUTHLIB),
                "x_raw_sign": against(RAW) if cell.contract == C else None,
                "batch": cell.batch,
                "samples_us": cell.samples,
            }
        )

    def fmt(x: float | None) -> str:
        return DASH if x is None else f"{x:.2f}"

    print()
    print(f"| contract | peer | clients | median µs/req | min{DASH}max µs | {TIMES} floor | {TIMES} Authlib | {TIMES} raw RS256 sign |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['contract']} | {r['peer']} | {r['clients']:,} | {r['median_us']:.1f} | {r['min_us']:.1f}{DASH}{r['max_us']:.1f} | "
            f"{fmt(r['x_floor'])} | {fmt(r['x_authlib'])} | {fmt(r['x_raw_sign'])} |"
        )
    if len(sizes) > 1:
        print()
        print(f"Scaling: median per-round ratio, {sizes[-1]:,} clients over {sizes[0]:,}")
        print()
        print("| contract | peer | ratio |")
        print("|---|---|---:|")
        for contract, role, label, _ in ROWS:
            big, small = by_key[(contract, role, sizes[-1])], by_key[(contract, role, sizes[0])]
            print(f"| {contract} | {label} | {median_ratio(big, small):.2f} |")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        meta = {"python": platform.python_version(), "nproc": os.cpu_count(), "rounds": rounds, "batch_s": batch_s, "sizes": sizes}
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"script": "bench_decide", "meta": meta, "results": results}, handle, indent=1)
        print(f"# raw samples: {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
