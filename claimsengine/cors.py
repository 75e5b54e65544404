"""Browser applications: which origin may call which endpoint, and with which CORS headers.

A single-page application calls ``/oauth/token``, ``/oauth/revoke``, ``/userinfo`` and the
discovery documents from JavaScript on its own origin. Whether the browser lets it read the
answer is the server's CORS decision, made here from the client's Allowed Web Origins
(``web_origins``), Allowed Origins (CORS) (``allowed_origins``) and the origins of its Allowed
Callback URLs (research: ``facts-cors`` C1-C5; choices: ``specs/choices.md``, "CORS").

``decide_cors`` is pure and total like ``decide``: it returns a :class:`CorsDecision` whose
``headers`` the server adds (to a preflight's 204 or to the endpoint's own answer) and whose
trace names the rules. ``origin_refusal`` is the same check inside a token or revocation
decision: a browser origin the client does not allow is refused there as Auth0 refuses it.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from claimsengine.model import Client, Frozen, Reason, Rejected, Tenant
from claimsengine.rules import ErrorCode, Rule
from claimsengine.steps import Trace, host_address, served_domain

__all__ = [
    "CLIENT_ENDPOINTS",
    "PUBLIC_ENDPOINTS",
    "CorsDecision",
    "CorsRequest",
    "decide_cors",
    "entry_problem",
    "origin_refusal",
    "web_message_refusal",
]

# Endpoints any origin may read: metadata and keys, which carry no secret (C3, inferred; every
# OIDC SDK running in a browser fetches them). Answered with ``Access-Control-Allow-Origin: *``.
PUBLIC_ENDPOINTS: dict[str, str] = {
    "/.well-known/openid-configuration": "GET",
    "/.well-known/jwks.json": "GET",
}
# Endpoints a browser calls for a client: the origin must be one the client allows (C3).
CLIENT_ENDPOINTS: dict[str, str] = {
    "/oauth/token": "POST",
    "/oauth/revoke": "POST",
    "/oauth/device/code": "POST",
    "/userinfo": "GET, POST",
}
_DEFAULT_PORTS = {"http": 80, "https": 443}


class CorsRequest(Frozen):
    """A request as CORS sees it: where it came through, what it asks for, and from where.

    ``client_id`` is the client the request names (the body's or Basic credentials', the
    token's ``azp`` at ``/userinfo``); ``None`` when the request names none, as a preflight
    never does. ``preflight`` marks an ``OPTIONS`` request with ``Access-Control-Request-Method``;
    ``request_headers`` are the names its ``Access-Control-Request-Headers`` lists.
    """

    domain: str | None = None
    path: str
    origin: str | None = None
    client_id: str | None = None
    preflight: bool = False
    request_headers: tuple[str, ...] = ()


class CorsDecision(Frozen):
    """Whether ``origin`` may read the answer, and the headers that say so (none when not)."""

    kind: Literal["cors"] = "cors"
    allowed: bool
    headers: tuple[tuple[str, str], ...] = ()
    trace: tuple[Reason, ...]


Origin = tuple[str, str, int]


def _origin(url: str, *, bare: bool = False) -> Origin | None:
    """``(scheme, host, port)`` of an http(s) URL, the port made explicit; ``None`` if it is none.

    With ``bare``, the URL must be an origin and nothing more: no user, path (but ``/``), query
    or fragment, printable ASCII only, as a browser's ``Origin`` header and a list entry are.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    extra = parts.path not in ("", "/") or bool(parts.query or parts.fragment) or "@" in parts.netloc
    if bare and (extra or not url.isascii() or not url.strip().isprintable()):
        return None
    return scheme, parts.hostname.rstrip("."), port or _DEFAULT_PORTS[scheme]


def _origin_matches(entry: str, origin: Origin, *, whole_url: bool, wildcards: bool) -> bool:
    """Whether a configured ``entry`` allows ``origin``.

    Only scheme, host and port count. A list entry (``whole_url`` False) must be an origin: one
    with a path, query or fragment matches nothing (C1: "may make the match fail"); a callback
    URL counts by its origin. ``https://*.example.com`` allows exactly one more label in front
    of ``example.com``, never ``example.com`` itself, and only when ``wildcards`` (third-party
    clients may not use them).
    """
    configured = _origin(entry, bare=not whole_url)
    if configured is None:
        return False
    scheme, host, port = configured
    if scheme != origin[0] or port != origin[2]:
        return False
    if host.startswith("*."):
        label, dot, rest = origin[1].partition(".")
        return wildcards and bool(label) and dot == "." and rest == host[2:] and "*" not in label
    return host == origin[1]


def entry_problem(entry: str, *, first_party: bool) -> str | None:
    """Why an Allowed Web Origins or Allowed Origins (CORS) entry can never match (``None``: it can)."""
    if _origin(entry) is None:
        return "is not an http(s) origin"
    if _origin(entry, bare=True) is None:
        return "has a path, query, fragment or user: only scheme, host and port may be given"
    if "*" in entry and not first_party:
        return "uses a wildcard, which third-party clients may not"
    return None


def _allowing_list(client: Client, origin: Origin, t: Trace) -> tuple[Rule, str] | None:
    """The rule and list entry of ``client`` that allow ``origin`` under ``behaviour.cors_origins``."""
    which = t.behaviour.cors_origins
    wildcards = client.is_first_party
    lists: list[tuple[Rule, tuple[str, ...], bool]] = []
    if which != "allowed_origins":
        lists.append((Rule.CORS_WEB_ORIGIN, client.web_origins, False))
    if which != "web_origins":
        lists.append((Rule.CORS_ALLOWED_ORIGIN, client.allowed_origins, False))
        # Allowed Origins (CORS) includes the callback URLs' origins by default (C1).
        lists.append((Rule.CORS_CALLBACK_ORIGIN, client.callbacks, True))
    for rule, entries, whole_url in lists:
        for entry in entries:
            if _origin_matches(entry, origin, whole_url=whole_url, wildcards=wildcards):
                return rule, entry
    return None


def _same_origin(origin: Origin, domain: str) -> bool:
    scheme, host, port = origin
    return host_address(f"{host}:{port}") == host_address(domain) or (port == _DEFAULT_PORTS[scheme] and host == domain)


def decide_cors(req: CorsRequest, tenant: Tenant) -> CorsDecision:
    """Decide the CORS answer to ``req``: allowed or not, the headers, and the rules why."""
    t = Trace(tenant, 0)
    origin_text = (req.origin or "").strip()
    if not origin_text:
        # cors.no_origin: not a cross-origin request (servers and same-origin GETs send none).
        t.note(Rule.CORS_NO_ORIGIN, "no Origin header")
        return CorsDecision(allowed=True, trace=tuple(t.reasons))
    origin = _origin(origin_text, bare=True)
    domain = served_domain(req.domain, tenant)
    if origin is not None and domain is not None and _same_origin(origin, domain):
        t.note(Rule.CORS_SAME_ORIGIN, f"the origin is the tenant domain {domain}")
        return CorsDecision(allowed=True, trace=tuple(t.reasons))
    if req.path in PUBLIC_ENDPOINTS:
        t.note(Rule.CORS_PUBLIC_ENDPOINT, f"{req.path} may be read from any origin")
        return CorsDecision(allowed=True, headers=_headers("*", PUBLIC_ENDPOINTS[req.path], req), trace=tuple(t.reasons))
    methods = CLIENT_ENDPOINTS.get(req.path)
    if methods is None:
        t.note(Rule.CORS_NOT_A_CORS_ENDPOINT, f"{req.path} is navigated to, not fetched: no CORS headers")
        return CorsDecision(allowed=False, trace=tuple(t.reasons))
    if origin is not None and domain is not None:
        allowed = _allowed_for(req, origin, t)
        if allowed:
            # Echo the origin (never "*"): the answer depends on it, so caches must key on it.
            return CorsDecision(allowed=True, headers=_headers(origin_text, methods, req), trace=tuple(t.reasons))
    why = "the origin is not an http(s) origin" if origin is None else "no client allows it"
    t.note(Rule.CORS_ORIGIN_NOT_ALLOWED, f"{why}: no CORS headers", "clients")
    return CorsDecision(allowed=False, trace=tuple(t.reasons))


def _allowed_for(req: CorsRequest, origin: Origin, t: Trace) -> bool:
    if req.client_id is not None:
        client = t.index.clients.get(req.client_id)
        if client is None:
            return False
        found = _allowing_list(client, origin, t)
        if found is None:
            return False
        t.note(found[0], f"{found[1]} ({_list_name(found[0])} of {client.client_id})", t.index.ref(client))
        return True
    # No client named (a preflight, or a /userinfo token that did not verify).
    if t.behaviour.cors_preflight == "any":
        t.note(Rule.CORS_ANY_ORIGIN_WITHOUT_CLIENT, "no client named: any origin is answered", "behaviour.cors_preflight")
        return True
    for client in t.tenant.clients:
        found = _allowing_list(client, origin, t)
        if found is not None:
            t.note(Rule.CORS_CONFIGURED_FOR_A_CLIENT, f"no client named; {client.client_id} allows {found[1]}", t.index.ref(client))
            return True
    return False


def _list_name(rule: Rule) -> str:
    return {
        Rule.CORS_WEB_ORIGIN: "Allowed Web Origins",
        Rule.CORS_ALLOWED_ORIGIN: "Allowed Origins (CORS)",
    }.get(rule, "the origin of an Allowed Callback URL")


def _headers(allow_origin: str, methods: str, req: CorsRequest) -> tuple[tuple[str, str], ...]:
    headers = [("Access-Control-Allow-Origin", allow_origin)]
    if allow_origin != "*":
        headers.append(("Vary", "Origin"))
    if req.preflight:
        headers.append(("Access-Control-Allow-Methods", methods))
        names = [n.strip().lower() for n in req.request_headers]
        # Echo the requested header names (auth0-spa-js sends Auth0-Client, DPoP clients DPoP).
        wanted = sorted({n for n in names if n and all(c.isascii() and (c.isalnum() or c in "-_") for c in n)})
        if wanted:
            headers.append(("Access-Control-Allow-Headers", ", ".join(wanted)))
        headers.append(("Access-Control-Max-Age", "86400"))
    return tuple(headers)


def origin_refusal(origin: str | None, client: Client, domain: str, t: Trace) -> Rejected | None:
    """Inside a token or revocation decision: refuse a browser ``origin`` ``client`` does not allow.

    Auth0 answers such a request as it answers bad client credentials, HTTP 401
    ``access_denied`` ``"Unauthorized"`` (C4, observed), and the browser then also misses the
    ``Access-Control-Allow-Origin`` header. No Origin, or the tenant's own, is no CORS request.
    """
    text = (origin or "").strip()
    if not text:
        return None
    parsed = _origin(text, bare=True)
    if parsed is not None and _same_origin(parsed, domain):
        t.note(Rule.CORS_SAME_ORIGIN, f"the origin is the tenant domain {domain}")
        return None
    found = _allowing_list(client, parsed, t) if parsed is not None else None
    ref = t.index.ref(client)
    if found is None:
        return t.reject(
            Rule.CORS_ORIGIN_NOT_ALLOWED,
            ErrorCode.ACCESS_DENIED,
            "Unauthorized",
            detail=f"the origin is not allowed for {client.client_id} (behaviour.cors_origins = {t.behaviour.cors_origins})",
            status=401,
            ref=ref,
        )
    t.note(found[0], f"{found[1]} ({_list_name(found[0])} of {client.client_id})", ref)
    return None


def web_message_refusal(redirect_uri: str, client: Client, t: Trace) -> Rejected | None:
    """``/authorize`` with ``response_mode=web_message``: the answer is posted to the origin of
    ``redirect_uri``, which must be in the client's Allowed Web Origins (C1, C4).

    Auth0 refuses any other origin on its own page, HTTP 400 ``invalid_request`` "The specified
    redirect_uri '...' does not have a registered origin." (nothing is posted, so the SDK in the
    hidden iframe ends with its timeout). Only Allowed Web Origins count here, not the callback
    URLs nor Allowed Origins (CORS).
    """
    origin = _origin(redirect_uri)
    ref = t.index.ref(client)
    if origin is not None:
        for entry in client.web_origins:
            if _origin_matches(entry, origin, whole_url=False, wildcards=client.is_first_party):
                t.note(Rule.CORS_WEB_MESSAGE_ORIGIN, f"{entry} (Allowed Web Origins of {client.client_id})", ref)
                return None
    t.redirect_uri = None  # nothing can be posted to an origin that is not registered
    return t.reject(
        Rule.CORS_WEB_MESSAGE_ORIGIN_NOT_REGISTERED,
        ErrorCode.INVALID_REQUEST,
        f"The specified redirect_uri '{redirect_uri}' does not have a registered origin.",
        status=400,
        ref=ref,
    )
