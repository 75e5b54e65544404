"""Embedding the engine in your own web app: a small, typed, stable API.

Three steps around :func:`claimsengine.decide`, which stays the only place decisions are made:

1. :func:`load` reads a tenant from a file (claimsengine's format or a Deploy CLI export);
2. :func:`token_request` turns the token endpoint's wire parameters and headers into a
   :class:`~claimsengine.TokenRequest` (the ``Host`` header is the domain the request came
   through, ``Authorization`` carries HTTP Basic client credentials);
3. :func:`token_response` turns the decision into Auth0's status, JSON body and headers,
   signing tokens with a :class:`~claimsengine.adapters.signing.Minter`.

The README's "Embedding the engine" section shows them in a Starlette app. Everything here
is an adapter: it translates and signs, and decides nothing. Codes and refresh tokens are
read back with the minter but not marked as used; a server that needs single use (as Auth0
has) keeps that state itself, as ``claimsengine serve`` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from claimsengine.model import Issued, Rejected, TokenRequest

from . import wire
from .loader import Loaded, load_tenant

if TYPE_CHECKING:
    from .signing import Minter

__all__ = ["NO_STORE", "Response", "load", "parameters", "token_request", "token_response"]

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
"""The headers every token endpoint response carries (RFC 6749 section 5.1)."""


@dataclass(frozen=True)
class Response:
    """An HTTP response as Auth0 sends it: status, JSON body and headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def load(
    path: str | Path,
    *,
    domain: str | None = None,
    keywords: Mapping[str, Any] | None = None,
    keyword_file: str | Path | None = None,
    credentials: str | Path | None = None,
) -> Loaded:
    """Load a tenant file or Deploy CLI export. ``Loaded.tenant`` is what :func:`claimsengine.decide`
    takes; ``Loaded.credentials`` the client ids and secrets to test with. Raises
    :class:`~claimsengine.adapters.loader.ConfigError` listing every problem."""
    return load_tenant(path, domain=domain, keywords=keywords, keyword_file=keyword_file, credentials=credentials)


def parameters(pairs: Iterable[tuple[str, Any]]) -> wire.Parameters:
    """Form or query parameters as (name, value) pairs, in order, e.g. Starlette's
    ``(await request.form()).multi_items()``; a repeated name is kept as a fact for the core."""
    return wire.Parameters(pairs)


def token_request(params: Mapping[str, Any], headers: Mapping[str, str], *, minter: Minter | None = None) -> TokenRequest:
    """The ``TokenRequest`` for a POST to ``/oauth/token``.

    ``params`` is the body's parameters (:func:`parameters` for a form, or a JSON object);
    ``headers`` the request headers (any case). With ``minter``, a ``code`` or
    ``refresh_token`` that minter issued is read back into the grant it stands for.
    """
    lower = {name.lower(): value for name, value in headers.items()}
    code_grant = refresh_grant = None
    if minter is not None:
        code = params.get("code")
        refresh = params.get("refresh_token")
        code_grant = minter.read_code(code) if isinstance(code, str) else None
        refresh_grant = minter.read_refresh_token(refresh) if isinstance(refresh, str) else None
    return wire.token_request(
        params, domain=lower.get("host"), authorization=lower.get("authorization"), code_grant=code_grant, refresh_grant=refresh_grant
    )


def token_response(decision: Issued | Rejected, minter: Minter) -> Response:
    """Auth0's answer to a decided token request: 200 with the signed tokens, or the error."""
    headers = {**dict(decision.headers), **NO_STORE}
    if isinstance(decision, Rejected):
        return Response(decision.status, wire.error_body(decision), headers)
    body = wire.success_body(
        decision,
        minter.access_token(decision),
        refresh_token=minter.refresh_token(decision.refresh) if decision.refresh is not None else None,
        id_token=minter.id_token(decision.id_token) if decision.id_token is not None else None,
    )
    return Response(200, body, headers)
