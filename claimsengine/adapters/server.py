"""A fake Auth0 tenant over HTTP, for tests and local development.

This module only moves bytes: it parses requests, resolves what needs keys or state (a
client assertion's signature, the grant behind a code or a refresh token, token counts
for quotas) and renders the core's answer. Every decision comes from
``claimsengine.decide`` or ``claimsengine.validate_access_token``.

Endpoints: ``POST /oauth/token``, ``GET /authorize`` (non-interactive), ``GET /userinfo``,
``GET /.well-known/openid-configuration``, ``GET /.well-known/jwks.json`` and, when
enabled, ``POST /admin/rotate-keys``. See ``specs/openapi.yaml`` and ``docs/server.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import hmac
import itertools
import json
import logging
import os
import secrets
import signal
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio.from_thread
import anyio.to_thread
import httpx
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from claimsengine import (
    Authorized,
    ClientAssertion,
    CustomDomain,
    DeviceApproved,
    Issued,
    MfaGrant,
    PresentedToken,
    QuotaUsage,
    Rejected,
    Rule,
    Tenant,
    TokenRequest,
    decide,
    served_domain,
    userinfo_claims,
    validate_access_token,
)
from claimsengine.adapters import control, cors_http, home, lifecycle, login, mfa_enrollment, mfa_oob, processes, users, wire
from claimsengine.adapters.signing import AssertionVerifier, KeySet, Minter, replay_key
from claimsengine.adapters.store import MemoryStore, Store, StoreError, open_store, shown_url
from claimsengine.auth0 import OIDC_SCOPE_CLAIMS
from claimsengine.grants import GRANTS, TOKEN_ENDPOINT, GrantType
from claimsengine.responses import ADVERTISED_MODES, RESPONSE_TYPES, ResponseMode, wire_response_type
from claimsengine.steps import consumes_code

__all__ = [
    "EXAMPLE_TENANT",
    "MAX_BODY_BYTES",
    "FakeTenant",
    "Generation",
    "LiveServer",
    "RedactSecrets",
    "SteppedClock",
    "add_arguments",
    "asgi_client",
    "create_app",
    "run",
    "serve_in_thread",
    "strict_host",
]

EXAMPLE_TENANT = Path(__file__).resolve().parent.parent / "examples" / "northwind.yaml"
# Token requests are a few hundred bytes; a private_key_jwt assertion is at most 2 KiB (R9).
MAX_BODY_BYTES = 64 * 1024
MAX_FORM_FIELDS = 64
server_log = logging.getLogger("claimsengine.server")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


# ---------------------------------------------------------------------------------------
# Domains
# ---------------------------------------------------------------------------------------


def strict_host(tenant: Tenant) -> Tenant:
    """``tenant`` with ``behaviour.unknown_host = "reject"`` (``--strict-host``)."""
    behaviour = tenant.behaviour.model_copy(update={"unknown_host": "reject"})
    return _replaced(tenant, behaviour=behaviour)


def _replaced(tenant: Tenant, **changes: Any) -> Tenant:
    """``tenant`` with some fields replaced by values validated on their own, without validating
    the tenant again (for 100k clients that is seconds, and the server used to do it at start-up
    for every change). Callers change only what no cross-reference check looks at, or add
    nothing that check could refuse; tests/test_server.py checks the result equals the
    validated tenant. A new object: its ``index`` is built afresh."""
    fields = {name: getattr(tenant, name) for name in Tenant.model_fields}
    return Tenant.model_construct(tenant.model_fields_set | changes.keys(), **{**fields, **changes})


def host_of(address: str) -> str:
    """The host of ``HOST[:PORT]`` (``[::1]:80`` gives ``::1``), lower case, for certificates."""
    address = address.strip()
    if address.count(":") > 1 and not address.startswith("["):
        return address.lower()  # a bare IPv6 address
    host = urlsplit(f"//{address}").hostname
    return (host or address).rstrip(".").lower()


def listen_addresses(host: str, port: int) -> list[str]:
    """The addresses a server listening on ``host:port`` declares as tenant domains.

    The listen address itself, and ``localhost:PORT`` for loopback and wildcard binds (a
    wildcard adds ``127.0.0.1:PORT`` too: ``0.0.0.0`` is no address a client can use).
    """
    name = host.strip().lower()
    wildcard = name in ("0.0.0.0", "::", "")  # noqa: S104 - recognising a wildcard, not binding one
    loopback = wildcard or name in ("127.0.0.1", "::1", "localhost")
    addresses = [] if wildcard else [f"[{name}]:{port}" if ":" in name else f"{name}:{port}"]
    if wildcard:
        addresses.append(f"127.0.0.1:{port}")
    if loopback:
        addresses.append(f"localhost:{port}")
    return list(dict.fromkeys(addresses))


def with_served_domains(tenant: Tenant, addresses: Sequence[str]) -> Tenant:
    """``tenant`` with each of ``addresses`` (``HOST[:PORT]``) declared as a verified custom domain.

    This is how a server makes the address it is reached through a domain of the tenant, so
    that discovery, ``iss`` and every advertised URL name that address (R50: a domain with a
    port serves that host and port only). Nothing is inferred from a request's Host.
    """
    known = {tenant.domain, *(d.domain for d in tenant.custom_domains)}
    extra = [CustomDomain(domain=a) for a in dict.fromkeys(a.strip().lower() for a in addresses) if a and a not in known]
    if not extra:
        return tenant
    # Only new domains, each validated (none duplicates a known one): no cross-reference changes.
    return _replaced(tenant, custom_domains=(*tenant.custom_domains, *extra))


# ---------------------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------------------


def _wall_clock() -> int:
    return int(time.time())


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock shared by every process on this machine: ``PATH.lock`` (``flock``)."""
    import fcntl

    with open(f"{path}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Generation:
    """One loaded configuration: the tenant and what is derived from it. A request is answered
    by the one generation it read at its start, never by a mix (see ``FakeTenant.reload``)."""

    number: int
    tenant: Tenant
    minter: Minter
    verifier: AssertionVerifier
    # Whether any token quota is configured (R43): without one, no decision reads the counts,
    # so a request does not read them from the store first (they are still counted).
    quotas: bool = True


def _has_quotas(tenant: Tenant) -> bool:
    return (
        tenant.default_token_quota is not None
        or tenant.default_organization_token_quota is not None
        or any(c.token_quota is not None for c in tenant.clients)
        or any(o.token_quota is not None for o in tenant.organizations)
    )


# How long a counter lives: its hour or its day (R43).
_WINDOWS = (("hour", 3600), ("day", 86400))


class FakeTenant:
    """The fake tenant's state: the current generation, keys, clock and the shared store.

    Reachable from an app as ``app.state.auth0``. What must hold across workers and restarts
    (used codes and ``jti``\\ s, token counts for quotas) lives in ``store``.
    """

    def __init__(
        self,
        tenant: Tenant,
        *,
        keys: KeySet | None = None,
        clock: Callable[[], int] | None = None,
        default_user: str | None = None,
        auto_consent: bool = True,
        admin: bool = False,
        admin_token: str | None = None,
        seed: int | None = None,
        store: Store | None = None,
        generation: int = 1,
        rule_header: bool = True,
        lines: control.Lines | None = None,
        key_file: Path | None = None,
        login_page: bool = False,
    ) -> None:
        self.keys = keys if keys is not None else KeySet.generate(seed=seed)
        # Keys shared with other processes (serve --workers N, --keys FILE): see refresh_keys.
        self.key_file = key_file
        self._key_stamp: tuple[int, int, int] | None = None
        # Addresses declared at start-up (serve_as); every generation's tenant includes them.
        self.served_as: tuple[str, ...] = ()
        self.scheme = "https"
        # The seed makes keys reproducible, never IVs: a repeated AES-GCM IV under one key
        # (say, in two workers) would break the sealed tokens.
        self.generation = self._generation(generation, tenant)
        self.clock: Callable[[], int] = clock or _wall_clock
        self.default_user = default_user
        self.auto_consent = auto_consent
        self.admin = admin
        self.admin_token = admin_token or (secrets.token_urlsafe(24) if admin else None)
        self.store: Store = store if store is not None else MemoryStore()
        # What a test sees and controls (adapters/control.py). Decisions and requests are kept
        # in the store when it is shared, else in this process, rendered when read.
        self.kept = control.Kept() if isinstance(self.store, MemoryStore) else None
        self.lines = lines if lines is not None else control.Lines()
        self.rule_header = rule_header
        # /authorize renders the login and consent pages and keeps a session (adapters/login.py).
        self.login_page = login_page
        self.overrides = control.Overrides()
        self._lock = threading.Lock()
        self.refresh_keys()

    def _generation(self, number: int, tenant: Tenant) -> Generation:
        tenant = with_served_domains(tenant, self.served_as)
        return Generation(
            number=number, tenant=tenant, minter=Minter(tenant, self.keys), verifier=AssertionVerifier(tenant), quotas=_has_quotas(tenant)
        )

    def __repr__(self) -> str:
        return f"FakeTenant(domain={self.tenant.domain!r}, generation={self.generation.number}, store={self.store!r})"

    @property
    def tenant(self) -> Tenant:
        return self.generation.tenant

    @property
    def minter(self) -> Minter:
        return self.generation.minter

    @property
    def verifier(self) -> AssertionVerifier:
        return self.generation.verifier

    def reload(self, tenant: Tenant, number: int | None = None) -> Generation:
        """Serve ``tenant`` (already validated) from now on, as the next generation.

        One reference assignment: a request in flight keeps the generation it started with.
        """
        with self._lock:
            self.generation = self._generation(self.generation.number + 1 if number is None else number, tenant)
            return self.generation

    def serve_as(self, addresses: Sequence[str], *, scheme: str = "https") -> None:
        """Declare the addresses this server is reached through as domains of the tenant.

        Called once at start-up, before the first request, with the bound address (and any
        ``--serve-as``). Discovery advertises ``scheme`` URLs for these addresses (``iss`` is
        always ``https://``, as Auth0's).
        """
        declared = (a.strip().lower() for a in addresses)
        self.served_as = tuple(dict.fromkeys((*self.served_as, *(a for a in declared if a))))
        self.scheme = scheme
        # The same configuration, now with the declared domains (a reload keeps them too).
        self.reload(self.tenant, number=self.generation.number)

    # Reasons, capture and overrides (adapters/control.py) ------------------------------

    def observe(self, endpoint: str, client_id: str | None, decision: Any, status: int) -> dict[str, str]:
        """Keep and log one decision; the response headers that show its rule ids."""
        # The wall clock, not self.now(): a stepped clock moves once per request, for the decision.
        at = _wall_clock()
        # Rule is a StrEnum: its members are the ids' text, in a header join and in JSON alike.
        rules = [reason.rule for reason in decision.trace]
        if self.kept is not None:
            if self.lines.enabled:
                self.lines.decision(control.decision_line(endpoint, client_id, decision, status, rules))
            self.kept.keep("decision", lambda: control.decision_record(endpoint, client_id, decision, status, at))
        else:
            record = control.decision_record(endpoint, client_id, decision, status, at)
            if self.lines.enabled:
                self.lines.decision(control.decision_line(endpoint, client_id, decision, status, rules))
            self.store.capture("decision", json.dumps(record), limit=control.MAX_KEPT)
        return {control.RULES_HEADER: " ".join(rules)} if self.rule_header else {}

    def capture(self, request: Request, params: Mapping[str, Any] | None = None) -> None:
        at = _wall_clock()
        if self.kept is not None:
            scope = dict(request.scope)  # what the record needs is read later, from a copy
            self.kept.keep("request", lambda: control.request_record(Request(scope), params, at))
        else:
            record = control.request_record(request, params, at)
            self.store.capture("request", json.dumps(record), limit=control.MAX_KEPT)

    def captured(self, kind: str) -> list[str]:
        """The records kept of ``kind`` (``decision`` or ``request``), oldest first, as JSON text."""
        return self.kept.records(kind) if self.kept is not None else self.store.captured(kind)

    def decisions(self) -> list[dict[str, Any]]:
        """The decisions kept (the last 1000, every worker's), oldest first, with their traces."""
        return [json.loads(item) for item in self.captured("decision")]

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        """The requests received (the last 1000, every worker's), oldest first, secrets masked;
        only those to ``path`` if given."""
        kept = [json.loads(item) for item in self.captured("request")]
        return [r for r in kept if path is None or r["path"] == path]

    def override(
        self, path: str, *, status: int | None = None, body: Any = None, delay: float = 0.0, method: str | None = None, times: int = 1
    ) -> control.Override:
        """Make the next ``times`` requests to ``path`` wait ``delay`` seconds, then answer
        ``status`` with the JSON ``body`` instead of the real answer (``status=None``: only the delay)."""
        return self.overrides.add(control.Override(path=path, status=status, body=body, delay=delay, method=method, times=times))

    def now(self) -> int:
        """The fake tenant's current time, in Unix seconds."""
        return int(self.clock())

    def answer_device(self, user_code: str, user_id: str | None, *, approve: bool) -> DeviceApproved | Rejected | str:
        """Answer a device's user code as its user (``user_id``, else the default user) would on
        the activation page: see :func:`claimsengine.adapters.lifecycle.answer_device`."""
        who = user_id if user_id is not None else self.default_user
        return lifecycle.answer_device(self.store, self.tenant, user_code, who, approve=approve, now=self.now())

    def rotate_keys(self) -> dict[str, Any]:
        """Rotate signing keys: the first call publishes the next key, the second signs with it.

        With a key file (``key_file``: ``serve --workers N`` or ``--keys FILE``), the rotation is
        made on the file, under an exclusive lock, from what the file holds now (another worker
        may have rotated it), and the file is replaced atomically: every process sees the new
        keys at its next request (``refresh_keys``), and a restart with the same file keeps them.
        """
        with self._lock:
            if self.key_file is None:
                self.keys.rotate()
                return self.keys.jwks()
            with _locked(self.key_file):
                self._key_stamp = None
                self._refresh_keys_locked()
                self.keys.rotate()
                self.keys.save(self.key_file)
                self._key_stamp = None
                self._refresh_keys_locked()
            return self.keys.jwks()

    def refresh_keys(self) -> None:
        """Adopt the key file's keys if it changed since they were read (one ``stat`` when not).

        Called before every request when there is a key file, so a rotation made by any
        process is used by all of them from their next request on: tokens are signed with the
        file's current key and every JWKS publishes the file's keys.
        """
        if self.key_file is None:
            return
        if self._stamp() != self._key_stamp:
            with self._lock:
                self._refresh_keys_locked()

    def _stamp(self) -> tuple[int, int, int] | None:
        assert self.key_file is not None
        try:
            st = os.stat(self.key_file)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _refresh_keys_locked(self) -> None:
        stamp = self._stamp()  # taken before reading: a newer file is read again next time
        if stamp is None or stamp == self._key_stamp:
            return
        assert self.key_file is not None
        self.keys = KeySet.load(self.key_file)
        self._key_stamp = stamp
        self.generation = dataclasses.replace(self.generation, minter=Minter(self.generation.tenant, self.keys))

    # Quotas ------------------------------------------------------------------------------

    def quota_usage(self, client_id: str | None, organization_id: str | None, now: int) -> QuotaUsage:
        counts = [
            self.store.count(f"{kind}_{window}", f"{key}\0{now // seconds}", now=now) if key else 0
            for kind, key in _subjects(client_id, organization_id)
            for window, seconds in _WINDOWS
        ]
        return _usage(counts)

    def count(self, issued: Issued, now: int, amount: int = 1) -> QuotaUsage:
        """Count an issued token atomically (``amount=-1`` takes it back); the usage just before."""
        return _usage(self.add_counts(issued, now, amount))

    def add_counts(self, issued: Issued, now: int, amount: int = 1) -> list[int]:
        """``count`` without the ``QuotaUsage``: for a tenant without quotas, whose counts are
        kept (a reload may add a quota) but never compared (``_single_use``)."""
        org = issued.claims.get("org_id")
        return [
            self.store.add(f"{kind}_{window}", f"{key}\0{now // seconds}", amount, expires=(now // seconds + 1) * seconds, now=now)
            - max(amount, 0)
            if key
            else 0
            for kind, key in _subjects(issued.client_id, org if isinstance(org, str) else None)
            for window, seconds in _WINDOWS
        ]


def _subjects(client_id: str | None, organization_id: str | None) -> tuple[tuple[str, str | None], ...]:
    return (("client", client_id), ("organization", organization_id))


def _usage(counts: list[int]) -> QuotaUsage:
    ch, cd, oh, od = (max(0, c) for c in counts)
    return QuotaUsage(client_hour=ch, client_day=cd, organization_hour=oh, organization_day=od)


# ---------------------------------------------------------------------------------------
# Reading requests
# ---------------------------------------------------------------------------------------


class BodyError(Exception):
    """A request body the adapter cannot turn into parameters."""


def _transport_error(description: str, status: int = 400) -> JSONResponse:
    # Framing problems (size, encoding, syntax) never reach the core: there are no
    # parameters to decide on. The shape is Auth0's error body.
    return JSONResponse({"error": "invalid_request", "error_description": description}, status_code=status, headers=NO_STORE)


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise BodyError("Invalid Content-Length")
        if int(declared) > MAX_BODY_BYTES:
            raise BodyError("Request body too large")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise BodyError("Request body too large")
            chunks.append(chunk)
    except ClientDisconnect:
        # One line, no traceback: a client going away is not the server's error.
        server_log.warning("client disconnected before sending the whole body of %s %s", request.method, request.url.path)
        raise BodyError("Request body incomplete") from None
    return b"".join(chunks)


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def _token_parameters(request: Request) -> dict[str, Any]:
    """The token request's parameters from a form or JSON body (R1)."""
    kind = _media_type(request)
    if kind not in ("application/x-www-form-urlencoded", "application/json"):
        raise BodyError("Content-Type must be application/x-www-form-urlencoded or application/json")
    raw = await _read_body(request)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError("Request body is not valid UTF-8") from None
    if kind == "application/json":
        try:
            return wire.json_parameters(text)
        except json.JSONDecodeError:
            raise BodyError("Request body is not valid JSON") from None
        except ValueError:
            raise BodyError("Request body must be a JSON object") from None
        except RecursionError:
            raise BodyError("Request body is not valid JSON") from None
    try:
        pairs = wire.form_pairs(text, MAX_FORM_FIELDS)
    except UnicodeDecodeError:
        raise BodyError("Request body is not valid UTF-8") from None
    except ValueError:
        raise BodyError("Too many form fields") from None
    return wire.Parameters(pairs)  # the core decides about repeated parameters


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# ---------------------------------------------------------------------------------------
# Endpoints
# ---------------------------------------------------------------------------------------


def _fake(request: Request) -> FakeTenant:
    state: FakeTenant = request.app.state.auth0
    return state


# Compared by identity: an enum member's hash is a Python-level call, and this runs per trace step.
_ACTION_RAN, _ACTION_FAILED, _ACTION_DENY = Rule.ACTION_RAN, Rule.ACTION_FAILED, Rule.ACTION_DENY
ACTION_RULES = frozenset({_ACTION_RAN, _ACTION_FAILED, _ACTION_DENY})


def _decision_headers(decision: Issued | Rejected, generation: Generation) -> dict[str, str]:
    headers = dict(decision.headers)
    headers.update(NO_STORE)
    headers["X-Claimsengine-Generation"] = str(generation.number)
    # The fake's explanation of what the tenant's Actions did (named, with what they set).
    ran = [r.detail for r in decision.trace if (rule := r.rule) is _ACTION_RAN or rule is _ACTION_FAILED or rule is _ACTION_DENY]
    if ran:
        headers["X-Claimsengine-Actions"] = "; ".join(ran).encode("ascii", "backslashreplace").decode()
    return headers


def _single_use(
    fake: FakeTenant,
    tenant: Tenant,
    req: TokenRequest,
    decision: Issued | Rejected,
    jti: tuple[str, int] | None,
    now: int,
    mfa_code: tuple[str, int] | None = None,
    quotas: bool = True,
) -> Issued | Rejected:
    """Commit what a decision used up, atomically, in the shared store.

    The core decided with the facts the store gave before (code unused, jti unseen, counts).
    If another request used the same code or jti, or took the last token of a quota, in the
    meantime, the fact changed: the core decides again with the new fact, so every answer
    is still the core's and each code and assertion succeeds exactly once.
    """
    # The jti is recorded once the core found the assertion otherwise valid, even if the
    # request then failed for another reason (an audience without a grant, say).
    valid_assertion = jti is not None and req.assertion is not None and _assertion_judged_valid(decision)
    if valid_assertion and jti is not None and req.assertion is not None and not fake.store.claim("jti", jti[0], expires=jti[1], now=now):
        req = req.model_copy(update={"assertion": req.assertion.model_copy(update={"jti_reused": True})})
        decision = _decide_token(req, tenant, now)
    grant = req.code_grant
    if not isinstance(decision, Issued):
        if grant is not None and req.code is not None and consumes_code(decision, tenant.behaviour):
            # A failed PKCE verification uses the code up too (the core's choice, issue 8).
            expires = grant.issued_at + tenant.behaviour.authorization_code_lifetime + 1
            fake.store.claim("code", req.code.get_secret_value(), expires=max(expires, now + 1), now=now)
        return decision
    if grant is not None and req.code is not None:
        expires = grant.issued_at + tenant.behaviour.authorization_code_lifetime + 1
        if not fake.store.claim("code", req.code.get_secret_value(), expires=max(expires, now + 1), now=now):
            return _decide_token(req.model_copy(update={"code_grant": None}), tenant, now)
    if mfa_code is not None and not fake.store.claim("mfa_code", mfa_code[0], expires=mfa_code[1], now=now):
        # The one-time password or recovery code was used by another request meanwhile.
        return _decide_token(req.model_copy(update={"mfa_code_reused": True}), tenant, now)
    if not quotas:
        fake.add_counts(decision, now)  # counted all the same: a reload may add a quota
        return decision
    before = fake.count(decision, now)
    if before != req.quota_usage:
        # Others issued tokens in between: decide again with the count this token really has.
        again = _decide_token(req.model_copy(update={"quota_usage": before}), tenant, now)
        if not isinstance(again, Issued):
            fake.count(decision, now, amount=-1)
            if grant is not None and req.code is not None:
                fake.store.release("code", req.code.get_secret_value())
            if mfa_code is not None:
                fake.store.release("mfa_code", mfa_code[0])
        return again
    return decision


def _decide_token(req: TokenRequest, tenant: Tenant, now: int) -> Issued | Rejected:
    return decide(req, tenant, now=now)


def _assertion_judged_valid(decision: Issued | Rejected) -> bool:
    return any(reason.rule is Rule.CLIENT_ASSERTION_VALID for reason in decision.trace)


async def _captured_parameters(request: Request, fake: FakeTenant) -> dict[str, Any] | Response:
    """A form or JSON body's parameters, captured (secrets masked); a framing error's answer."""
    try:
        params = await _token_parameters(request)
    except BodyError as exc:
        fake.capture(request)
        return _transport_error(str(exc))
    fake.capture(request, params)
    return params


class _TokenJSON(JSONResponse):
    """A JSONResponse whose body is rendered by one encoder made once: Starlette's ``render``
    calls ``json.dumps`` with its options, which builds a ``JSONEncoder`` per response. Same
    options, same bytes."""

    _encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode

    def render(self, content: Any) -> bytes:
        return self._encode(content).encode("utf-8")


def _refusal(
    fake: FakeTenant,
    endpoint: str,
    who: str | None,
    decision: Rejected,
    headers: Mapping[str, str] = NO_STORE,
    *,
    mfa_token: str | None = None,
) -> JSONResponse:
    """The error response for a core's refusal, observed (logged, kept, rules header)."""
    observed = {**headers, **fake.observe(endpoint, who, decision, decision.status)}
    return _TokenJSON(wire.error_body(decision, mfa_token=mfa_token), status_code=decision.status, headers=observed)


async def token(request: Request) -> Response:
    """POST /oauth/token."""
    fake = _fake(request)
    generation = fake.generation  # this request's configuration, start to finish
    params = await _captured_parameters(request, fake)
    if isinstance(params, Response):
        return params
    now = fake.now()
    client_id = _text(params.get("client_id"))
    assertion: ClientAssertion | None = None
    jti: tuple[str, int] | None = None
    if (compact := _text(params.get("client_assertion"))) is not None:
        assertion = generation.verifier.verify(compact, client_id_hint=client_id, now=now)
        jti = replay_key(assertion, now=now) if assertion is not None else None
        if assertion is not None and jti is not None and fake.store.claimed("jti", jti[0], now=now):
            assertion = assertion.model_copy(update={"jti_reused": True})
    code_grant = None
    code = _text(params.get("code"))
    if code is not None and not fake.store.claimed("code", code, now=now):
        code_grant = generation.minter.read_code(code)
    refresh_grant = None
    if (refresh := _text(params.get("refresh_token"))) is not None:
        refresh_grant = generation.minter.read_refresh_token(refresh)
    device_grant = None
    if (device_code := _text(params.get("device_code"))) is not None:
        device_grant = generation.minter.read_device_code(device_code)
    password_valid_for, mfa_grant, mfa_code = await _password_and_mfa_facts(fake, generation, params, now)
    oob_grant, oob_state = None, None
    if (oob_code := _text(params.get("oob_code"))) is not None:
        oob_grant, oob_state = mfa_oob.read(fake.store, generation.minter, oob_code, now)
    enrolled = mfa_enrollment.load(fake.store, mfa_grant.user_id, now)[1] if mfa_grant is not None else None
    authorization = request.headers.get("authorization")
    usage = (
        fake.quota_usage(client_id or wire.basic_credentials(authorization)[0], _organization_key(generation.tenant, params), now)
        if generation.quotas
        else wire.NO_USAGE
    )
    req = wire.token_request(
        params,
        domain=request.headers.get("host"),
        authorization=authorization,
        assertion=assertion,
        code_grant=code_grant,
        refresh_grant=refresh_grant,
        device_grant=device_grant,
        quota_usage=usage,
        password_valid_for=password_valid_for,
        mfa_grant=mfa_grant,
        mfa_code_reused=mfa_code is not None and fake.store.claimed("mfa_code", mfa_code[0], now=now),
        origin=request.headers.get("origin"),
        oob_grant=oob_grant,
        oob_state=oob_state,
        mfa_enrollment=enrolled,
    )
    req, facts = lifecycle.read_facts(fake.store, req, now)
    decision = _single_use(fake, generation.tenant, req, _decide_token(req, generation.tenant, now), jti, now, mfa_code, generation.quotas)
    decision = _record_lifecycle(fake, generation.tenant, req, decision, facts, now)
    if req.mfa_grant is not None and any(reason.rule is Rule.MFA_ENROLLMENT_CONFIRMED for reason in decision.trace):
        mfa_enrollment.confirm(fake.store, req.mfa_grant.user_id, now)
    if oob_grant is not None and oob_state is not None and req.grant_type == GrantType.MFA_OOB.value:
        # Every poll of a known challenge is a fact for the next one's slow_down.
        mfa_oob.polled(fake.store, oob_grant, now)
    who = req.client_id or req.basic_client_id
    cors_http.for_client(request, who)
    if isinstance(decision, Rejected):
        # mfa_required: the withheld login goes back sealed, as the mfa_token.
        mfa_token = generation.minter.mfa_token(decision.mfa) if decision.mfa is not None else None
        return _refusal(fake, TOKEN_ENDPOINT, who, decision, _decision_headers(decision, generation), mfa_token=mfa_token)
    minter = generation.minter
    body = wire.success_body(
        decision,
        minter.access_token(decision),
        refresh_token=minter.refresh_token(decision.refresh) if decision.refresh is not None else None,
        id_token=minter.id_token(decision.id_token) if decision.id_token is not None else None,
    )
    return _TokenJSON(body, headers={**_decision_headers(decision, generation), **fake.observe("/oauth/token", who, decision, 200)})


def _record_lifecycle(
    fake: FakeTenant, tenant: Tenant, req: TokenRequest, decision: Issued | Rejected, facts: lifecycle.Facts, now: int
) -> Issued | Rejected:
    """Record what the decision changed about a refresh-token family or a device code. When
    another request changed those facts since they were read, read them again and let the
    core decide again: each rotation and each device code's redemption happens once."""
    for _ in range(lifecycle.MAX_SWAPS):
        recorded = lifecycle.record(fake.store, req, decision, facts, now)
        if recorded is not None:
            return recorded
        if isinstance(decision, Issued):
            fake.count(decision, now, amount=-1)
        req, facts = lifecycle.read_facts(fake.store, req, now)
        decision = _decide_token(req, tenant, now)
        if isinstance(decision, Issued):
            fake.count(decision, now)
    raise RuntimeError("the refresh-token family or device code kept changing")


_PASSWORD_GRANTS = frozenset({GrantType.PASSWORD.value, GrantType.PASSWORD_REALM.value})
# How long a used one-time password is remembered: its 30 s step and the drift either side;
# a used recovery code, for good (ten years).
_MFA_CODE_MEMORY = {GrantType.MFA_OTP.value: 120, GrantType.MFA_RECOVERY_CODE.value: 10 * 365 * 86400, GrantType.MFA_OOB.value: 660}


async def _password_and_mfa_facts(
    fake: FakeTenant, generation: Generation, params: Mapping[str, Any], now: int
) -> tuple[tuple[str, ...], MfaGrant | None, tuple[str, int] | None]:
    """What the core needs about a password or an MFA grant: the users whose bcrypt hash the
    password matches (checked in a worker thread: bcrypt is slow on purpose), the login behind
    the mfa_token, and the store key of the one-time password or recovery code presented."""
    grant_type = _text(params.get("grant_type"))
    matched: tuple[str, ...] = ()
    if grant_type in _PASSWORD_GRANTS:
        password = params.get("password")
        username = _text(params.get("username"))
        matched = await anyio.to_thread.run_sync(
            users.password_matches, generation.tenant, username, password if isinstance(password, str) else None
        )
    mfa_grant = None
    mfa_code = None
    if (mfa_token := _text(params.get("mfa_token"))) is not None:
        mfa_grant = generation.minter.read_mfa_token(mfa_token)
        code = _text(params.get("otp")) or _text(params.get("recovery_code")) or _text(params.get("oob_code"))
        memory = _MFA_CODE_MEMORY.get(grant_type or "")
        if mfa_grant is not None and code is not None and memory is not None:
            mfa_code = (f"{mfa_grant.user_id}\0{grant_type}\0{code.strip()}", now + memory)
    return matched, mfa_grant, mfa_code


def _organization_key(tenant: Tenant, params: Mapping[str, Any]) -> str | None:
    """The organization whose token count matters: the one named in the request, by id or name."""
    value = _text(params.get("organization"))
    if value is None:
        return None
    index = tenant.index
    org = index.organizations_by_id.get(value) or index.organizations_by_name.get(value)
    return org.id if org is not None else None


def _with_query(uri: str, extra: Mapping[str, str | None]) -> str:
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query.extend((k, v) for k, v in extra.items() if v is not None)
    return urlunsplit(parts._replace(query=urlencode(query)))


def _error_page(rejected: Rejected, request: Request) -> Response:
    body = wire.error_body(rejected)
    if "text/html" in request.headers.get("accept", ""):
        error, description = escape(body["error"]), escape(body["error_description"])
        page = f"<!doctype html><title>{error}</title><h1>{error}</h1><p>{description}</p>"
        return HTMLResponse(page, status_code=rejected.status, headers=NO_STORE)
    return JSONResponse(body, status_code=rejected.status, headers=NO_STORE)


async def authorize(request: Request) -> Response:
    """GET /authorize: a non-interactive login as ``login_hint`` or the default user; with the
    login page (``--login-page``), the browser's session or the login form (adapters/login.py)."""
    fake = _fake(request)
    params = wire.Parameters(request.query_params.multi_items())  # the core decides about repeated ones
    fake.capture(request, params)
    if fake.login_page:
        return await login.interactive_authorize(request, fake, params)
    user = _text(params.get("login_hint")) or fake.default_user
    req = wire.authorize_request(params, domain=request.headers.get("host"), user_id=user, consent=fake.auto_consent)
    generation = fake.generation
    decision = decide(req, generation.tenant, now=fake.now())
    return authorize_response(request, fake, generation, decision, _text(params.get("client_id")))


def authorize_response(
    request: Request, fake: FakeTenant, generation: Generation, decision: Authorized | Rejected, client_id: str | None
) -> Response:
    """The answer to an ``/authorize`` decision: a redirect with the code or the error, or an error page."""
    if isinstance(decision, Authorized):
        return _authorize_answer(fake, client_id, decision, decision.response_mode, _authorize_tokens(generation.minter, decision))
    assert isinstance(decision, Rejected)
    if decision.redirect_uri is not None:
        mode = decision.response_mode or ResponseMode.QUERY
        return _authorize_answer(fake, client_id, decision, mode, wire.authorize_error_parameters(decision))
    page = _error_page(decision, request)
    page.headers.update(fake.observe("/authorize", client_id, decision, decision.status))
    return page


def _authorize_tokens(minter: Minter, decision: Authorized) -> list[tuple[str, str]]:
    """Mint what the decision issues from /authorize: the code, the access token, and the ID
    token with the hashes of the other two that the decision asks for."""
    code = minter.code(decision.grant) if decision.code else None
    access_token = minter.access_token(decision.access) if decision.access is not None else None
    id_token = None
    if decision.id_token is not None:
        hashes = decision.id_token_hashes
        id_token = minter.id_token(
            decision.id_token,
            at_hash_of=access_token if "at_hash" in hashes else None,
            c_hash_of=code if "c_hash" in hashes else None,
        )
    return wire.authorize_parameters(decision, code=code, access_token=access_token, id_token=id_token)


def origin_of(uri: str) -> str:
    """The origin (scheme, host and port) of ``uri``, as a browser's postMessage compares it."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme.lower()}://{host}" + (f":{parts.port}" if parts.port is not None else "")


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no "<", ">", "&" or line separators left raw."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def form_post_page(action: str, params: Sequence[tuple[str, str]]) -> str:
    """``response_mode=form_post`` (OAuth 2.0 Form Post Response Mode): a page whose form posts
    the parameters to the callback as soon as it loads, in the shape of Auth0's (facts-issue9
    I7); every value HTML-escaped."""
    inputs = "".join(f'<input type="hidden" name="{escape(name)}" value="{escape(value)}"/>' for name, value in params)
    return (
        "<!DOCTYPE html><html><head><title>Submit This Form</title></head><body>"
        f'<form method="post" name="hiddenform" action="{escape(action)}">{inputs}'
        '<noscript><p>Script is disabled. Click Submit to continue.</p><input type="submit" value="Submit"/></noscript>'
        "</form><script>document.forms[0].submit();</script></body></html>"
    )


def web_message_page(redirect_uri: str, params: Sequence[tuple[str, str]]) -> str:
    """``response_mode=web_message``: a page that posts ``{type: "authorization_response",
    response: {...}}`` to the opener (a popup) or the parent (a silent-auth iframe), addressed
    to the callback's origin, which is what auth0-spa-js's ``runIframe`` and popup wait for
    (facts-issue9 I8)."""
    message = {"type": "authorization_response", "response": dict(params)}
    return (
        "<!DOCTYPE html><html><head><title>Authorization Response</title></head><body>"
        '<script type="text/javascript">(function (window) {'
        f"var targetOrigin = {_script_json(origin_of(redirect_uri))};"
        f"var authorizationResponse = {_script_json(message)};"
        "var mainWin = window.opener ? window.opener : window.parent;"
        "mainWin.postMessage(authorizationResponse, targetOrigin);"
        "})(this);</script></body></html>"
    )


def _authorize_answer(
    fake: FakeTenant, client_id: str | None, decision: Authorized | Rejected, mode: ResponseMode, params: list[tuple[str, str]]
) -> Response:
    """Render an /authorize answer in the response mode the core chose; decide nothing."""
    redirect_uri = decision.redirect_uri
    assert redirect_uri is not None
    if mode in (ResponseMode.QUERY, ResponseMode.FRAGMENT):
        if mode is ResponseMode.QUERY:
            location = _with_query(redirect_uri, dict(params))
        else:
            location = urlunsplit(urlsplit(redirect_uri)._replace(fragment=urlencode(params)))
        return RedirectResponse(location, status_code=302, headers={**NO_STORE, **fake.observe("/authorize", client_id, decision, 302)})
    page = form_post_page(redirect_uri, params) if mode is ResponseMode.FORM_POST else web_message_page(redirect_uri, params)
    return HTMLResponse(page, status_code=200, headers={**NO_STORE, **fake.observe("/authorize", client_id, decision, 200)})


def _unauthorized(description: str, error: str | None = "invalid_token") -> JSONResponse:
    challenge = 'Bearer realm="auth0"'
    if error is not None:
        challenge += f', error="{error}", error_description="{description}"'
    body = {"error": error or "invalid_request", "error_description": description}
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": challenge, **NO_STORE})


def _domain_refused() -> JSONResponse:
    # The host is never echoed: it is attacker-controlled.
    return _transport_error("Unknown domain")


async def userinfo(request: Request) -> Response:
    """GET /userinfo: the profile of the token's user, filtered by the token's scopes (R71)."""
    fake = _fake(request)
    fake.capture(request)
    generation = fake.generation
    tenant = generation.tenant
    domain = served_domain(request.headers.get("host"), tenant)
    if domain is None:
        return _domain_refused()
    scheme, _, credentials = request.headers.get("authorization", "").strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() != "bearer" or not credentials:
        return _unauthorized("Missing access token", error=None)
    presented: PresentedToken | None
    if credentials.count(".") == 4:
        claims = generation.minter.read_opaque(credentials)
        # An opaque token is authenticated by decrypting it; the core judges its claims.
        presented = PresentedToken(header={"alg": "dir", "enc": "A256GCM"}, claims=claims) if claims is not None else None
    else:
        presented = generation.minter.verify_jwt(credentials, audience=tenant.userinfo_audience)
    if presented is None:
        return _unauthorized("Invalid token")
    verdict = validate_access_token(presented, audience=tenant.userinfo_audience, domain=domain, tenant=tenant, now=fake.now())
    azp = presented.claims.get("azp")
    who = azp if isinstance(azp, str) else None
    cors_http.for_client(request, who)
    if isinstance(verdict, Rejected):
        refused = _unauthorized(verdict.error_description)
        refused.headers.update(fake.observe("/userinfo", who, verdict, 401))
        return refused
    profile = userinfo_claims(presented.claims, tenant)
    if profile is None:
        return _unauthorized("Invalid token")
    return JSONResponse(profile, headers={**NO_STORE, **fake.observe("/userinfo", who, verdict, 200)})


def discovery_document(tenant: Tenant, domain: str, *, scheme: str = "https") -> dict[str, Any]:
    """OpenID Provider metadata for ``domain`` (an already resolved tenant domain).

    The issuer is always ``https://{domain}/``; the endpoints use ``scheme`` (``http`` for
    an address a plain-http server declared, so that they are reachable).
    """
    base = f"{scheme}://{domain}"
    claims = sorted({"sub", "iss", "aud", "exp", "iat", "nonce", "org_id", "org_name"} | {c for v in OIDC_SCOPE_CLAIMS.values() for c in v})
    return {
        "issuer": f"https://{domain}/",
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "device_authorization_endpoint": f"{base}{DEVICE_AUTHORIZATION_PATH}",
        "revocation_endpoint": f"{base}{REVOCATION_PATH}",
        "mfa_challenge_endpoint": f"{base}{MFA_CHALLENGE_PATH}",
        "userinfo_endpoint": f"{base}/userinfo",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        # RP-initiated logout (issue 9 item 7; Auth0 publishes it when the tenant enables it).
        "end_session_endpoint": f"{base}{login.OIDC_LOGOUT_PATH}",
        "scopes_supported": ["openid", *OIDC_SCOPE_CLAIMS, "offline_access"],
        "response_types_supported": [wire_response_type(kind) for kind in RESPONSE_TYPES],
        "response_modes_supported": [mode.value for mode in ADVERTISED_MODES],
        "grant_types_supported": sorted(g.grant_type.value for g in GRANTS.values() if g.endpoint == TOKEN_ENDPOINT),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "RS384", "PS256"],
        "code_challenge_methods_supported": ["S256", "plain"],
        "claims_supported": claims,
        "request_parameter_supported": False,
        # Omitting it means true (OpenID Connect Discovery 1.0); Auth0 publishes false (issue 8, item 9).
        "request_uri_parameter_supported": False,
    }


DEVICE_AUTHORIZATION_PATH = "/oauth/device/code"
REVOCATION_PATH = "/oauth/revoke"
ACTIVATION_PATH = "/activate"


def _has_credentials(params: Mapping[str, Any], authorization: str | None) -> bool:
    basic_id, _ = wire.basic_credentials(authorization)
    return basic_id is not None or any(_text(params.get(name)) is not None for name in ("client_secret", "client_assertion"))


async def device_authorization(request: Request) -> Response:
    """POST /oauth/device/code (RFC 8628 section 3.1): a device code and a user code."""
    fake = _fake(request)
    generation = fake.generation
    params = await _captured_parameters(request, fake)
    if isinstance(params, Response):
        return params
    now = fake.now()
    req = wire.device_code_request(
        params, domain=request.headers.get("host"), credentials=_has_credentials(params, request.headers.get("authorization"))
    )
    cors_http.for_client(request, req.client_id)
    decision = decide(req, generation.tenant, now=now)
    if isinstance(decision, Rejected):
        return _refusal(fake, DEVICE_AUTHORIZATION_PATH, req.client_id, decision)
    grant = lifecycle.start_device(fake.store, decision.grant, now)
    assert grant.user_code is not None
    scheme = fake.scheme if grant.domain in fake.served_as else "https"
    verification = f"{scheme}://{grant.domain}{ACTIVATION_PATH}"
    body = {
        "device_code": generation.minter.device_code(grant),
        "user_code": grant.user_code,
        "verification_uri": verification,
        "verification_uri_complete": f"{verification}?{urlencode({'user_code': grant.user_code})}",
        "expires_in": grant.expires_in,
        "interval": grant.interval,
    }
    return JSONResponse(body, headers={**NO_STORE, **fake.observe(DEVICE_AUTHORIZATION_PATH, req.client_id, decision, 200)})


def _client_assertion(params: Mapping[str, Any], generation: Generation, now: int) -> ClientAssertion | None:
    """The verified ``client_assertion`` of a request that may authenticate with private_key_jwt
    (``None``: none sent, or it did not verify; the core decides what that means)."""
    compact = _text(params.get("client_assertion"))
    if compact is None:
        return None
    return generation.verifier.verify(compact, client_id_hint=_text(params.get("client_id")), now=now)


async def _client_call(
    request: Request,
) -> tuple[FakeTenant, Generation, dict[str, Any], int, ClientAssertion | None] | Response:
    """What an endpoint beside the token endpoint starts from: the fake tenant, this request's
    configuration, the captured parameters, the time and the verified client assertion (or the
    answer to a body that cannot be read)."""
    fake = _fake(request)
    generation = fake.generation
    params = await _captured_parameters(request, fake)
    if isinstance(params, Response):
        return params
    now = fake.now()
    return fake, generation, params, now, _client_assertion(params, generation, now)


async def revoke(request: Request) -> Response:
    """POST /oauth/revoke: revoke a refresh token and its family, or its whole grant (200, empty body)."""
    call = await _client_call(request)
    if isinstance(call, Response):
        return call
    fake, generation, params, now, assertion = call
    token_value = _text(params.get("token"))
    grant = generation.minter.read_refresh_token(token_value) if token_value is not None else None
    req = wire.revoke_request(
        params,
        domain=request.headers.get("host"),
        authorization=request.headers.get("authorization"),
        assertion=assertion,
        refresh_grant=grant,
        origin=request.headers.get("origin"),
    )
    decision = decide(req, generation.tenant, now=now)
    who = req.client_id or req.basic_client_id
    cors_http.for_client(request, who)
    if isinstance(decision, Rejected):
        return _refusal(fake, REVOCATION_PATH, who, decision)
    if decision.grant is not None:
        lifecycle.revoke_grant(fake.store, decision.grant, now, decision.family)
    elif decision.family is not None:
        lifecycle.revoke_family(fake.store, decision.family, now)
    return Response(status_code=200, headers={**NO_STORE, **fake.observe(REVOCATION_PATH, who, decision, 200)})


MFA_CHALLENGE_PATH = "/mfa/challenge"


async def mfa_challenge(request: Request) -> Response:
    """POST /mfa/challenge: the challenge for an ``mfa_required`` login (an ``oob_code`` for an
    out-of-band authenticator, recorded in the store as pending)."""
    call = await _client_call(request)
    if isinstance(call, Response):
        return call
    fake, generation, params, now, assertion = call
    mfa_token = _text(params.get("mfa_token"))
    grant = generation.minter.read_mfa_token(mfa_token) if mfa_token is not None else None
    req = wire.mfa_challenge_request(
        params,
        domain=request.headers.get("host"),
        authorization=request.headers.get("authorization"),
        assertion=assertion,
        mfa_grant=grant,
        mfa_enrollment=mfa_enrollment.load(fake.store, grant.user_id, now)[1] if grant is not None else None,
    )
    decision = decide(req, generation.tenant, now=now)
    who = req.client_id or req.basic_client_id
    if isinstance(decision, Rejected):
        return _refusal(fake, MFA_CHALLENGE_PATH, who, decision)
    body: dict[str, str] = {"challenge_type": decision.challenge_type}
    if decision.oob is not None:
        body["oob_code"], _ = mfa_oob.start(fake.store, generation.minter, decision.oob, now)
    if decision.binding_method is not None:
        body["binding_method"] = decision.binding_method
    return JSONResponse(body, headers={**NO_STORE, **fake.observe(MFA_CHALLENGE_PATH, who, decision, 200)})


MFA_ASSOCIATE_PATH = "/mfa/associate"


async def mfa_associate(request: Request) -> Response:
    """POST /mfa/associate: add the first authenticator of the user behind the ``mfa_token``
    sent as the bearer token (otp: a secret for an authenticator app; oob: a challenge, as
    ``/mfa/challenge`` starts), recorded in the store until an MFA grant verifies it."""
    call = await _client_call(request)
    if isinstance(call, Response):
        return call
    fake, generation, params, now, assertion = call
    bearer = wire.bearer_token(request.headers.get("authorization"))
    grant = generation.minter.read_mfa_token(bearer) if bearer is not None else None
    drawn = {"new_secret": mfa_enrollment.new_secret(), "new_recovery_code": mfa_enrollment.new_recovery_code()}
    for _ in range(lifecycle.MAX_SWAPS):
        raw, enrolled = mfa_enrollment.load(fake.store, grant.user_id, now) if grant is not None else (None, None)
        req = wire.mfa_associate_request(
            params, **drawn, domain=request.headers.get("host"), assertion=assertion, mfa_grant=grant, mfa_enrollment=enrolled
        )
        decision = decide(req, generation.tenant, now=now)
        # The enrolment changes only from the record the decision was made on; else decide again.
        if isinstance(decision, Rejected) or mfa_enrollment.record(fake.store, decision.user_id, raw, decision.enrollment, now):
            break
    else:
        raise RuntimeError("the user's enrolment kept changing")
    if isinstance(decision, Rejected):
        return _refusal(fake, MFA_ASSOCIATE_PATH, req.client_id, decision)
    body: dict[str, Any] = {"authenticator_type": decision.authenticator_type}
    if decision.secret is not None and decision.barcode_uri is not None:
        body["secret"], body["barcode_uri"] = decision.secret.get_secret_value(), decision.barcode_uri.get_secret_value()
    if decision.oob is not None:
        body["oob_channel"] = decision.oob_channel
        body["oob_code"], _ = mfa_oob.start(fake.store, generation.minter, decision.oob, now)
    if decision.binding_method is not None:
        body["binding_method"] = decision.binding_method
    if decision.recovery_code is not None:
        body["recovery_codes"] = [decision.recovery_code.get_secret_value()]
    return JSONResponse(body, headers={**NO_STORE, **fake.observe(MFA_ASSOCIATE_PATH, req.client_id, decision, 200)})


async def admin_mfa(request: Request) -> Response:
    """POST /admin/mfa/oob: what the user does on the phone for an out-of-band challenge.

    JSON body ``{"oob_code": ... | "user_id": ..., "action": "approve" | "deny" | "read"}``:
    approve or deny a push, or read the SMS (``binding_code``); without ``oob_code`` the user's
    latest challenge. 404 for an unknown challenge, 409 for one answered before.
    """
    fake = _fake(request)
    refused = _admin_refusal(request, fake)
    if refused is not None:
        return refused
    try:
        body = json.loads(await _read_body(request) or b"null")
    except (BodyError, ValueError, RecursionError):
        body = None
    named = isinstance(body, dict) and any(isinstance(body.get(k), str) for k in ("oob_code", "user_id"))
    if not isinstance(body, dict) or not named or body.get("action") not in ("approve", "deny", "read"):
        return _transport_error('Expected {"oob_code": "..." or "user_id": "...", "action": "approve" | "deny" | "read"}')
    oob_code, user_id = body.get("oob_code"), body.get("user_id")
    outcome = mfa_oob.answer(
        fake.store,
        fake.generation.minter,
        oob_code=oob_code if isinstance(oob_code, str) else None,
        user_id=user_id if isinstance(user_id, str) else None,
        action=body["action"],
        now=fake.now(),
    )
    if outcome == "unknown":
        return JSONResponse({"error": "not_found", "error_description": "Unknown challenge"}, status_code=404, headers=NO_STORE)
    if outcome == "answered":
        return JSONResponse(
            {"error": "conflict", "error_description": "The challenge was answered before"}, status_code=409, headers=NO_STORE
        )
    return JSONResponse(outcome, headers=NO_STORE)


async def admin_device(request: Request) -> Response:
    """POST /admin/device: answer a user code as its user would on the activation page.

    JSON body ``{"user_code": ..., "action": "approve" | "deny", "user_id": ...}`` (``user_id``
    defaults to ``--default-user``). Approval is the core's decision: its refusal is returned
    as an error. 404 for an unknown user code, 409 for one answered before.
    """
    fake = _fake(request)
    refused = _admin_refusal(request, fake)
    if refused is not None:
        return refused
    try:
        body = json.loads(await _read_body(request) or b"null")
    except (BodyError, ValueError, RecursionError):
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("user_code"), str) or body.get("action") not in ("approve", "deny"):
        return _transport_error('Expected {"user_code": "...", "action": "approve" | "deny", "user_id": "..."}')
    user_id = body.get("user_id")
    outcome = fake.answer_device(body["user_code"], user_id if isinstance(user_id, str) else None, approve=body["action"] == "approve")
    if isinstance(outcome, Rejected):
        return JSONResponse(wire.error_body(outcome), status_code=outcome.status, headers=NO_STORE)
    if outcome == "unknown":
        return JSONResponse({"error": "not_found", "error_description": "Unknown user code"}, status_code=404, headers=NO_STORE)
    if outcome == "answered":
        return JSONResponse(
            {"error": "conflict", "error_description": "The user code was answered before"}, status_code=409, headers=NO_STORE
        )
    status = "approved" if isinstance(outcome, DeviceApproved) else "denied"
    return JSONResponse({"user_code": lifecycle.normal_user_code(body["user_code"]), "status": status}, headers=NO_STORE)


async def openid_configuration(request: Request) -> Response:
    """GET /.well-known/openid-configuration."""
    fake = _fake(request)
    domain = served_domain(request.headers.get("host"), fake.tenant)
    if domain is None:
        return _domain_refused()
    scheme = fake.scheme if domain in fake.served_as else "https"
    return JSONResponse(discovery_document(fake.tenant, domain, scheme=scheme), headers={"Cache-Control": "public, max-age=15"})


async def jwks(request: Request) -> Response:
    """GET /.well-known/jwks.json."""
    fake = _fake(request)
    if served_domain(request.headers.get("host"), fake.tenant) is None:
        return _domain_refused()
    return JSONResponse(fake.keys.jwks(), headers={"Cache-Control": "public, max-age=15"})


async def rotate_keys(request: Request) -> Response:
    """POST /admin/rotate-keys (only when the admin API is enabled)."""
    fake = _fake(request)
    refused = _admin_refusal(request, fake)
    if refused is not None:
        return refused
    published = fake.rotate_keys()
    return JSONResponse({"current_kid": fake.keys.current_kid, "jwks": published}, headers=NO_STORE)


async def add_override(request: Request) -> Response:
    """POST /admin/overrides (admin token): the next matching request gets the given answer;
    DELETE /admin/overrides drops every pending override."""
    fake = _fake(request)
    refused = _admin_refusal(request, fake)
    if refused is not None:
        return refused
    if request.method == "DELETE":
        fake.overrides.clear()
        return Response(status_code=204, headers=NO_STORE)
    try:
        override = fake.overrides.add(control.override_from_json(json.loads(await _read_body(request))))
    except (ValueError, BodyError) as exc:
        return _transport_error(str(exc))
    return JSONResponse({"path": override.path, "pending": len(fake.overrides)}, status_code=201, headers=NO_STORE)


def _admin_refusal(request: Request, fake: FakeTenant) -> Response | None:
    """The admin API takes ``Authorization: Bearer <admin token>`` (printed at start-up) and
    refuses cross-site requests: a browser page elsewhere must not rotate the keys."""
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    if (site is not None and site not in ("same-origin", "none")) or (origin is not None and not _same_origin(origin, request)):
        body = {"error": "access_denied", "error_description": "Cross-site request refused"}
        return JSONResponse(body, status_code=403, headers=NO_STORE)
    scheme, _, presented = request.headers.get("authorization", "").strip().partition(" ")
    expected = fake.admin_token or ""
    given = presented.strip().encode("utf-8", "surrogateescape")
    if scheme.lower() != "bearer" or not expected or not hmac.compare_digest(given, expected.encode()):
        return _unauthorized("Admin token required")
    return None


def _same_origin(origin: str, request: Request) -> bool:
    parts = urlsplit(origin)
    return parts.netloc == request.headers.get("host") and parts.scheme == request.url.scheme


class _FreshKeys:
    """Before each request, the keys of the shared key file if another process rotated them."""

    def __init__(self, app: Any, fake: FakeTenant) -> None:
        self.app = app
        self.fake = fake

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.fake.refresh_keys()
        await self.app(scope, receive, send)


class _TokenLane:
    """``POST /oauth/token`` straight to its endpoint when the layers between would only pass it on.

    Token requests are the load a test suite puts on the fake. Without an ``Origin`` header
    (CORS adds nothing) and with no override pending, Starlette's override, CORS and exception
    layers and its Router only hand such a request along, at 15-30 µs of CPU per request
    (bench/README.md, run 5). This layer sits inside the request log and the key refresh, so those
    still run, and does what the skipped layers would: the endpoint's answer, or on an
    exception ``_server_error``'s answer and the exception raised again, as Starlette's
    ServerErrorMiddleware does. Any other request goes through the whole stack. The answers,
    headers, log lines and kept records are the same either way (tests/test_token_lane.py).
    """

    def __init__(self, app: Any, overrides: control.Overrides) -> None:
        self.app = app
        self.overrides = overrides

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != TOKEN_ENDPOINT
            or scope["method"] != "POST"
            or len(self.overrides)
            or any(name == b"origin" for name, _ in scope["headers"])
        ):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        started = False

        async def sending(message: Any) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            response = await token(request)
            await response(scope, receive, sending)
        except Exception as exc:
            if not started:
                await (await _server_error(request, exc))(scope, receive, send)
            raise


async def _server_error(request: Request, exc: Exception) -> Response:
    # Never leak internals (or secrets in exception messages) to the caller; log the type only.
    server_log.error("internal error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return JSONResponse({"error": "server_error", "error_description": "Internal error"}, status_code=500, headers=NO_STORE)


def create_app(
    tenant: Tenant,
    *,
    keys: KeySet | None = None,
    clock: Callable[[], int] | None = None,
    default_user: str | None = None,
    auto_consent: bool = True,
    admin: bool = False,
    admin_token: str | None = None,
    seed: int | None = None,
    store: Store | None = None,
    generation: int = 1,
    rule_header: bool = True,
    lines: control.Lines | None = None,
    key_file: Path | None = None,
    login_page: bool = False,
    token_lane: bool = True,
) -> Starlette:
    """An ASGI app serving ``tenant`` as Auth0 would. The state is ``app.state.auth0``.

    ``store`` holds what must be true across processes (default: a new in-memory store).
    With ``admin``, ``POST /admin/rotate-keys`` needs ``admin_token`` (generated if not given,
    readable as ``app.state.auth0.admin_token``). ``token_lane=False`` sends token requests
    through every layer too (the same answers, slower; for comparing the two).
    """
    fake = FakeTenant(
        tenant,
        keys=keys,
        clock=clock,
        default_user=default_user,
        auto_consent=auto_consent,
        admin=admin,
        admin_token=admin_token,
        seed=seed,
        store=store,
        generation=generation,
        rule_header=rule_header,
        lines=lines,
        key_file=key_file,
        login_page=login_page,
    )
    # Paths are all distinct literals, so the order changes no answer; the Router tries the routes
    # in order (a regular expression each), and the token endpoint is the one under load.
    routes = [
        Route("/oauth/token", token, methods=["POST"]),
        Route("/", home.home, methods=["GET"]),
        Route(login.LOGIN_PATH, login.login_submit, methods=["POST"]),
        Route(login.CONSENT_PATH, login.consent_submit, methods=["POST"]),
        Route(login.V2_LOGOUT_PATH, login.logout, methods=["GET"]),
        Route(login.OIDC_LOGOUT_PATH, login.logout, methods=["GET", "POST"]),
        Route(DEVICE_AUTHORIZATION_PATH, device_authorization, methods=["POST"]),
        Route(REVOCATION_PATH, revoke, methods=["POST"]),
        Route(MFA_CHALLENGE_PATH, mfa_challenge, methods=["POST"]),
        Route(MFA_ASSOCIATE_PATH, mfa_associate, methods=["POST"]),
        Route("/authorize", authorize, methods=["GET"]),
        Route("/userinfo", userinfo, methods=["GET"]),
        Route("/.well-known/openid-configuration", openid_configuration, methods=["GET"]),
        Route("/.well-known/jwks.json", jwks, methods=["GET"]),
        Route(control.DECISIONS_PATH, control.decisions, methods=["GET"]),
        Route(control.REQUESTS_PATH, control.requests, methods=["GET"]),
    ]
    if admin:
        routes.append(Route("/admin/rotate-keys", rotate_keys, methods=["POST"]))
        routes.append(Route("/admin/device", admin_device, methods=["POST"]))
        routes.append(Route("/admin/mfa/oob", admin_mfa, methods=["POST"]))
        routes.append(Route("/admin/overrides", add_override, methods=["POST", "DELETE"]))
    app = Starlette(routes=routes, exception_handlers={Exception: _server_error})
    app.add_middleware(control.OverrideMiddleware, overrides=fake.overrides)
    # Preflights are answered first, and every answer (overrides too) gets CORS headers.
    app.add_middleware(cors_http.CorsMiddleware)
    if token_lane:
        app.add_middleware(_TokenLane, overrides=fake.overrides)
    if key_file is not None:
        app.add_middleware(_FreshKeys, fake=fake)
    app.add_middleware(control.RequestLog, lines=fake.lines)  # outermost: every request gets its line
    app.state.auth0 = fake
    return app


# ---------------------------------------------------------------------------------------
# Serving: in a thread (tests) and from the command line
# ---------------------------------------------------------------------------------------


class _PortalTransport(httpx.BaseTransport):
    """A synchronous httpx transport that hands each request to ``httpx.ASGITransport``
    on an anyio blocking portal (an event loop in a helper thread)."""

    def __init__(self, app: Starlette) -> None:
        self._asgi = httpx.ASGITransport(app=app)
        self._portal_cm = anyio.from_thread.start_blocking_portal()
        self._portal = self._portal_cm.__enter__()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def send() -> httpx.Response:
            forwarded = httpx.Request(request.method, request.url, headers=request.headers, content=body, extensions=request.extensions)
            response = await self._asgi.handle_async_request(forwarded)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content, extensions=response.extensions)

        return self._portal.call(send)

    def close(self) -> None:
        self._portal_cm.__exit__(None, None, None)


@contextlib.contextmanager
def asgi_client(app: Starlette, *, base_url: str | None = None) -> Iterator[httpx.Client]:
    """A synchronous ``httpx.Client`` calling ``app`` in process (no sockets).

    Requests come through ``https://{canonical domain}`` unless ``base_url`` says otherwise.
    """
    url = base_url or f"https://{app.state.auth0.tenant.domain}"
    with httpx.Client(transport=_PortalTransport(app), base_url=url) as client:
        yield client


@dataclass
class Certificates:
    """A throwaway CA and a server certificate for the tenant's domains and loopback."""

    directory: Path
    ca_path: Path
    cert_path: Path


def make_certificates(tenant: Tenant, directory: Path, served_as: Sequence[str] = ()) -> Certificates:
    """Issue a trustme CA and a server certificate into ``directory``.

    The certificate names the tenant's domains, the ``served_as`` addresses and loopback,
    each by its host alone: a certificate names hosts, not ports.
    """
    import trustme

    ca = trustme.CA()
    domains = [tenant.domain, *(d.domain for d in tenant.custom_domains), *served_as, "localhost", "127.0.0.1", "::1"]
    cert = ca.issue_cert(*sorted({host_of(d) for d in domains}))
    ca_path, cert_path = directory / "ca.pem", directory / "server.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert_path.chmod(0o600)
    return Certificates(directory=directory, ca_path=ca_path, cert_path=cert_path)


@dataclass
class LiveServer:
    """A running server: where it listens and what it serves.

    ``domain`` is the address it listens on (``127.0.0.1:PORT``), declared as a domain of
    the tenant at start-up: give it to an SDK as the Auth0 domain, and ``iss``, discovery and
    the JWKS URL all name it.
    """

    url: str
    port: int
    app: Starlette
    ca_path: Path | None = None
    host: str = "127.0.0.1"

    @property
    def fake(self) -> FakeTenant:
        state: FakeTenant = self.app.state.auth0
        return state

    @property
    def tenant(self) -> Tenant:
        return self.fake.tenant

    @property
    def keys(self) -> KeySet:
        return self.fake.keys

    @property
    def domain(self) -> str:
        """The served address, ``HOST:PORT``: a domain of the tenant (SDKs take it as the Auth0 domain)."""
        return listen_addresses(self.host, self.port)[0]

    @property
    def issuer(self) -> str:
        return f"https://{self.domain}/"

    def ssl_context(self) -> ssl.SSLContext:
        """An ``ssl.SSLContext`` trusting this server's throwaway CA (``tls=True`` only)."""
        if self.ca_path is None:
            raise ValueError("this server does not use TLS")
        return ssl.create_default_context(cafile=str(self.ca_path))


@contextlib.contextmanager
def serve_in_thread(app: Starlette, *, tls: bool = False, host: str = "127.0.0.1", serve_as: Sequence[str] = ()) -> Iterator[LiveServer]:
    """Serve ``app`` with uvicorn on an ephemeral loopback port until the block ends.

    Once the port is bound, ``HOST:PORT`` (and ``localhost:PORT`` on loopback) and every
    ``serve_as`` address are declared as domains of the tenant (``FakeTenant.serve_as``).
    """
    import uvicorn

    with tempfile.TemporaryDirectory(prefix="claimsengine-") as tmp:
        certs = make_certificates(app.state.auth0.tenant, Path(tmp), serve_as) if tls else None
        config = uvicorn.Config(
            app,
            host=host,
            port=0,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ssl_certfile=str(certs.cert_path) if certs else None,
            ssl_keyfile=str(certs.cert_path) if certs else None,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="claimsengine-server", daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("the server did not start")
                time.sleep(0.005)
            port = int(server.servers[0].sockets[0].getsockname()[1])
            scheme = "https" if tls else "http"
            fake: FakeTenant = app.state.auth0
            fake.serve_as([*listen_addresses(host, port), *serve_as], scheme=scheme)
            live = LiveServer(url="", port=port, app=app, ca_path=certs.ca_path if certs else None, host=host)
            live.url = f"{scheme}://{live.domain}"
            yield live
        finally:
            server.should_exit = True
            thread.join(timeout=10)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``claimsengine serve`` (``--tenant``, ``--auth0-domain``, ``--keyword``, ... are global)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=4000, help="port to listen on; 0 picks a free one (default: 4000)")
    parser.add_argument("--tls", action="store_true", help="serve https with a throwaway CA; prints the CA bundle's path")
    parser.add_argument(
        "--serve-as",
        action="append",
        metavar="HOST[:PORT]",
        help="another address clients reach this server through (a proxy, a hosts-file name): declared as a tenant domain",
    )
    parser.add_argument(
        "--strict-host",
        action="store_true",
        help="refuse hosts that are not a tenant domain (400) even if the tenant serves them leniently",
    )
    parser.add_argument(
        "--no-rule-header",
        dest="rule_header",
        action="store_false",
        help=f"do not send the decision's rule ids in the {control.RULES_HEADER} response header",
    )
    parser.add_argument(
        "--no-request-log",
        dest="request_log",
        action="store_false",
        help="do not log a line per request on stderr (by default: one structured line, the decision's or the request's)",
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes; they share one key set (default: 1)")
    parser.add_argument("--keys", metavar="FILE", help="key set file: loaded if it exists, else generated and saved there")
    parser.add_argument("--seed", type=int, help="seed for generated keys and token randomness (reproducible runs)")
    parser.add_argument("--default-user", metavar="ID", help="user logged in at /authorize when there is no login_hint")
    parser.add_argument(
        "--login-page",
        action="store_true",
        help="/authorize shows a login form and a consent page and keeps a session cookie (prompt=none then works)",
    )
    parser.add_argument("--admin", action="store_true", help="enable POST /admin/rotate-keys (needs the admin token printed at start-up)")
    parser.add_argument(
        "--store",
        metavar="URL",
        help="shared state: memory, sqlite:///PATH or redis://HOST:PORT/DB "
        "(default: memory for one worker, SQLite for --workers N, next to --keys FILE when given)",
    )
    parser.add_argument("--watch", action="store_true", help="reload the tenant when its file changes (SIGHUP always reloads)")
    parser.add_argument(
        "--read-timeout",
        type=float,
        default=processes.DEFAULT_READ_TIMEOUT,
        metavar="SECONDS",
        help="a request (headers and body) must arrive within SECONDS (default: 10)",
    )
    parser.add_argument(
        "--deploy-config",
        metavar="FILE",
        help="the Deploy CLI's config.json: AUTH0_DOMAIN and AUTH0_KEYWORD_REPLACE_MAPPINGS (options given here win)",
    )
    parser.add_argument("--now", type=int, metavar="EPOCH", help="deterministic mode: the clock starts at EPOCH instead of the wall clock")
    parser.add_argument(
        "--clock-step",
        type=int,
        default=0,
        metavar="SECONDS",
        help="with --now: the clock moves SECONDS at each request (default: 0, fixed)",
    )
    environment_defaults(parser)


ENV_PREFIX = "CLAIMSENGINE_"
_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off", ""})


def environment_defaults(parser: argparse.ArgumentParser, environ: Mapping[str, str] | None = None) -> None:
    """Every option of ``serve`` (the tenant options too) from ``CLAIMSENGINE_<OPTION>``:
    ``--port`` from ``CLAIMSENGINE_PORT``, ``--serve-as`` from ``CLAIMSENGINE_SERVE_AS``
    (several separated by spaces), ``--tls`` from ``CLAIMSENGINE_TLS=1``, ``--no-rule-header``
    from ``CLAIMSENGINE_RULE_HEADER=0``. The command line wins. A value that does not parse is
    reported when ``serve`` runs (other commands are not affected)."""
    env = os.environ if environ is None else environ
    defaults: dict[str, Any] = {}
    problems: list[str] = []
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "rest"):
            continue
        name = ENV_PREFIX + action.dest.upper()
        raw = env.get(name)
        if raw is None:
            continue
        if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
            flag = raw.strip().lower()
            if flag not in _TRUE | _FALSE:
                problems.append(f"{name}={raw!r}: expected 1 or 0 (true/false, yes/no, on/off)")
                continue
            defaults[action.dest] = flag in _TRUE
        elif isinstance(action, argparse._AppendAction):
            defaults[action.dest] = raw.split()
        elif callable(action.type):
            try:
                defaults[action.dest] = action.type(raw)
            except ValueError:
                problems.append(f"{name}={raw!r}: not a valid {getattr(action.type, '__name__', 'value')}")
        else:
            defaults[action.dest] = raw
    parser.set_defaults(**defaults, environment_problems=tuple(problems))


def _keywords(values: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values or ():
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--keyword expects NAME=VALUE, got {name!r}")
        out[name] = value
    return out


def _load(config: Mapping[str, Any]) -> Tenant:
    return _load_with_notes(config)[0]


def _load_with_notes(config: Mapping[str, Any]) -> tuple[Tenant, tuple[str, ...]]:
    from claimsengine.adapters.loader import load_tenant, read_deploy_config

    domain, keywords = config["domain"], dict(config["keywords"])
    if config.get("deploy_config"):
        # The Deploy CLI's config.json; command-line values win over it.
        deploy = read_deploy_config(config["deploy_config"])
        domain = domain or deploy.domain
        keywords = {**deploy.keywords, **keywords}
    loaded = load_tenant(
        config["tenant"],
        keywords=keywords,
        keyword_file=config["keyword_file"],
        domain=domain,
        credentials=config["credentials"],
        node_modules=config.get("node_modules"),
        action_secrets=config.get("action_secrets"),
    )
    tenant = loaded.tenant
    if config.get("users") or config.get("user_assignments"):
        tenant = users.with_users(tenant, config.get("users"), config.get("user_assignments"))
    return (strict_host(tenant) if config["strict_host"] else tenant), loaded.notes


class SteppedClock:
    """A clock for golden tests: reads ``start``, then ``start + step``, and so on.

    ``itertools.count`` makes each reading atomic under the GIL, so concurrent requests
    never see the same tick twice.
    """

    def __init__(self, start: int, step: int = 0) -> None:
        self.start, self.step = start, step
        self._ticks = itertools.count()

    def __call__(self) -> int:
        return self.start + next(self._ticks) * self.step


class RedactSecrets(logging.Filter):
    """Masks secret query parameters in uvicorn's access log: a client may put a secret in a
    URL where it does not belong, and it must not reach the log from there."""

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn's access records carry (client, method, path with query, HTTP version, status).
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(target := args[2], str):
            record.args = (*args[:2], wire.redact_query(target), *args[3:])
        return True


def _log_decisions() -> None:
    """On stderr, in every process: one line per decision (logger ``claimsengine.decisions``)
    and the server's own warnings (``claimsengine.server``: disconnects, internal errors)."""
    for logger, prefix, level in ((control.decision_log, "decision ", logging.INFO), (server_log, "", logging.WARNING)):
        if not logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter(f"claimsengine: {prefix}%(message)s"))
            logger.addHandler(handler)
            logger.setLevel(level)
            logger.propagate = False


def _redact_access_log() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactSecrets) for f in access.filters):
        access.addFilter(RedactSecrets())


def default_store(workers: int, keys: str | None, private: Path) -> str:
    """The store when ``--store`` is not given.

    With ``--keys FILE`` the keys outlive the process, so the state guarding what they sign
    does too: ``FILE.state.sqlite3`` (a restart with the same keys does not accept used codes
    again). Otherwise ``memory`` for one process, and a private SQLite file for ``--workers N``.
    """
    if keys:
        return f"sqlite:///{Path(keys).resolve()}.state.sqlite3"
    return "memory" if workers == 1 else f"sqlite:///{private / 'state.sqlite3'}"


def _watched(config: Mapping[str, Any]) -> list[Path]:
    paths = [Path(config["tenant"])]
    paths.extend(Path(config[name]) for name in ("keyword_file", "users", "user_assignments") if config.get(name))
    return paths


# Exit codes of `claimsengine serve` (docs/server.md).
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_CANNOT_LISTEN = 3


class _Stopped(Exception):
    """SIGTERM or SIGINT arrived: unwind, so that the temporary key directory is removed."""


def _stop(signum: int, frame: Any) -> None:
    raise _Stopped(signum)


def _warn_if_shared(path: Path) -> None:
    """A key file that others can read lets them mint this tenant's tokens: say so."""
    mode = path.stat().st_mode
    if mode & 0o077:
        print(f"claimsengine serve: warning: {path} is readable by others (mode {mode & 0o777:o}); chmod 600 it", file=sys.stderr)


# A tenant of 10,000 applications would print 10,000 lines at every start: the banner names the first.
BANNER_LIMIT = 20


def banner(tenant: Tenant, *, url: str, domain: str, ca_path: Path | None, admin_token: str | None = None) -> str:
    """What `claimsengine serve` prints once it listens: where, how to trust it, what it serves.

    Client secrets are not printed (secrets never reach logs); they are in the tenant file.
    """
    lines = [
        f"claimsengine: serving {tenant.domain} at {url}",
        f"  Auth0 domain for SDKs: {domain}   (iss: https://{domain}/)",
        f"  discovery: {url}/.well-known/openid-configuration",
    ]
    if ca_path is not None:
        lines.append(f"  CA bundle: {ca_path}")
    if admin_token is not None:
        lines.append(f"  admin token: {admin_token}")
    others = [d.domain for d in tenant.custom_domains if d.verified and d.domain != domain]
    lines.append(f"  domains: {', '.join([tenant.domain, *others])}")
    lines.append("  clients:")
    shown = tenant.clients[:BANNER_LIMIT]
    lines.extend(f"    {c.client_id}  {c.name or ''} ({c.app_type}; {', '.join(c.grant_types or ())})" for c in shown)
    if len(tenant.clients) > len(shown):
        lines.append(f"    ... and {len(tenant.clients) - len(shown):,} more")
    if tenant.users:
        users = ", ".join(u.user_id for u in tenant.users[:BANNER_LIMIT])
        more = len(tenant.users) - BANNER_LIMIT
        lines.append(f"  users: {users}" + (f", ... and {more:,} more" if more > 0 else ""))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """``claimsengine serve``: load the tenant, bind the port, print the banner, serve until stopped.

    SIGTERM and SIGINT both stop the server gracefully and remove the temporary directory
    holding the keys and the TLS private key. Exit codes: 0 stopped, 2 bad options or
    tenant, 3 cannot listen (the port is busy, or not permitted).
    """
    handlers = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _run(args)
    except _Stopped:
        return EXIT_OK
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _run(args: argparse.Namespace) -> int:
    from claimsengine.adapters.loader import ConfigError

    for problem in getattr(args, "environment_problems", ()):
        print(f"claimsengine serve: {problem}", file=sys.stderr)
    if getattr(args, "environment_problems", ()):
        return EXIT_USAGE

    try:
        keywords = _keywords(getattr(args, "keyword", None))
    except ValueError as exc:
        print(f"claimsengine serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    config: dict[str, Any] = {
        "tenant": str(getattr(args, "tenant", None) or EXAMPLE_TENANT),
        "keywords": keywords,
        "keyword_file": getattr(args, "keyword_file", None),
        "domain": getattr(args, "auth0_domain", None),
        "credentials": getattr(args, "credentials", None),
        "node_modules": getattr(args, "node_modules", None),
        "action_secrets": getattr(args, "action_secrets", None),
        "users": getattr(args, "users", None),
        "user_assignments": getattr(args, "user_assignments", None),
        "strict_host": bool(args.strict_host),
        "default_user": args.default_user,
        "admin": bool(args.admin),
        "seed": args.seed,
        "now": getattr(args, "now", None),
        "clock_step": getattr(args, "clock_step", 0),
        "deploy_config": getattr(args, "deploy_config", None),
    }
    try:
        tenant, notes = _load_with_notes(config)
    except ConfigError as exc:
        print(f"claimsengine serve: cannot load the tenant:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.workers < 1:
        print("claimsengine serve: --workers must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        sock = processes.bind(args.host, args.port)
    except OSError as exc:
        reason = "the port is already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        print(f"claimsengine serve: cannot listen on {args.host}:{args.port}: {reason}", file=sys.stderr)
        return EXIT_CANNOT_LISTEN
    with sock, tempfile.TemporaryDirectory(prefix="claimsengine-serve-") as tmp:
        private = Path(tmp)  # mkdtemp directories are 0700
        port = int(sock.getsockname()[1])
        served = [*listen_addresses(args.host, port), *(getattr(args, "serve_as", None) or ())]
        if args.keys and Path(args.keys).exists():
            _warn_if_shared(Path(args.keys))
            keys = KeySet.load(args.keys)
        else:
            keys = KeySet.generate(seed=args.seed)
            if args.keys:
                keys.save(args.keys)
                os.chmod(args.keys, 0o600)
        # Workers share their keys through a file: a rotation by one reaches all (FakeTenant.rotate_keys).
        key_file = Path(args.keys) if args.keys else (private / "keys.json" if args.workers > 1 else None)
        if key_file is not None and not args.keys:
            keys.save(key_file)
        store_url = args.store or default_store(args.workers, args.keys, private)
        try:
            open_store(store_url).close()  # fail now, once, if the store cannot be opened
        except StoreError as exc:
            print(f"claimsengine serve: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if store_url == "memory" and args.workers > 1:
            print("claimsengine serve: --store memory cannot be shared by --workers; use sqlite:///PATH or redis://", file=sys.stderr)
            return EXIT_USAGE
        options: dict[str, Any] = {}
        scheme, ca_path = "http", None
        if args.tls:
            certs = make_certificates(tenant, private, served)
            options = {"ssl_certfile": str(certs.cert_path), "ssl_keyfile": str(certs.cert_path)}
            scheme, ca_path = "https", certs.ca_path
        admin_token = secrets.token_urlsafe(24) if args.admin else None
        clock_start = getattr(args, "now", None)
        clock_step = getattr(args, "clock_step", 0)

        def make_app(loaded: Tenant, generation: int) -> Starlette:
            # Runs in every serving process, workers included (after the fork: each opens the store).
            _redact_access_log()
            _log_decisions()
            clock = SteppedClock(clock_start, clock_step) if clock_start is not None else None
            app = create_app(
                loaded,
                keys=keys,
                clock=clock,
                default_user=args.default_user,
                admin=bool(args.admin),
                admin_token=admin_token,
                seed=args.seed,
                store=open_store(store_url),
                generation=generation,
                rule_header=getattr(args, "rule_header", True),
                lines=control.Lines(sys.stderr, enabled=getattr(args, "request_log", True)),
                key_file=key_file,
                login_page=bool(getattr(args, "login_page", False)),
            )
            # The addresses this server is reached through are domains of every generation.
            fake: FakeTenant = app.state.auth0
            fake.serve_as(served, scheme=scheme)
            return app

        # Once: the banner and the first generation share this tenant (and so its index).
        tenant = with_served_domains(tenant, served)
        text = banner(tenant, url=f"{scheme}://{served[0]}", domain=served[0], ca_path=ca_path, admin_token=admin_token)
        print(f"{text}\n  store: {shown_url(store_url)}", flush=True)
        for note in notes:
            if "inferred" in note:  # the loader's guesses a user must be able to check
                print(f"  note: {note}", flush=True)
        serving = processes.Serving(
            load=lambda: _load(config),
            make_app=make_app,
            adopt=lambda app, loaded, generation: app.state.auth0.reload(loaded, generation),
            workers=args.workers,
            watch=_watched(config) if args.watch else (),
            read_timeout=args.read_timeout,
            uvicorn_options=options,
        )
        processes.serve(sock, tenant, serving)
    return EXIT_OK
