"""Property tests for YOUR tenant: copy this file into your project's tests and point it at your export.

    CLAIMSENGINE_TENANT=auth0/tenant.yaml CLAIMSENGINE_AUTH0_DOMAIN=acme.auth0.com \
    CLAIMSENGINE_KEYWORD_FILE=auth0/keywords.json pytest test_tenant_properties.py

Without ``CLAIMSENGINE_TENANT`` it runs against claimsengine's bundled example tenant.
``claimsengine.testing.token_requests`` draws client_credentials requests from the tenant's
real clients, effective credentials (the export's secrets, your ``CLAIMSENGINE_CREDENTIALS``
overlay or the loader's derived local-testing secrets), grants, audiences, scopes, domains
and organizations, mixed with wrong ones, so about half of them issue a token: a property
about issued tokens is checked on tokens that are really issued, not vacuously.
Needs ``pip install 'claimsengine[cli,testing]'``.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings

from claimsengine import ClientGrant, Issued, Rejected, SubjectType, TokenRequest, decide
from claimsengine.adapters.loader import load_tenant
from claimsengine.testing import token_requests

NOW = 1_700_000_000
LOADED = load_tenant(
    os.environ.get("CLAIMSENGINE_TENANT") or Path(__file__).resolve().parent / "northwind.yaml",
    domain=os.environ.get("CLAIMSENGINE_AUTH0_DOMAIN") or None,
    keyword_file=os.environ.get("CLAIMSENGINE_KEYWORD_FILE") or None,
    credentials=os.environ.get("CLAIMSENGINE_CREDENTIALS") or None,
)
TENANT = LOADED.tenant
# Every decision is pure and fast; a few hundred requests cover a tenant's classes well.
CHECKS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decide(request: TokenRequest) -> Issued | Rejected:
    decision = decide(request, TENANT, now=NOW)
    event("issued" if isinstance(decision, Issued) else f"rejected: {decision.error.value}")
    return decision


def _presented_client(request: TokenRequest) -> str | None:
    return request.client_id or request.basic_client_id


def _grant_of(decision: Issued) -> ClientGrant | None:
    """The client grant behind a token issued for an API (the client's own, or the third-party default)."""
    assert decision.api is not None
    return TENANT.index.grant_for(TENANT.index.clients[decision.client_id], decision.api, SubjectType.CLIENT)


@CHECKS
@given(token_requests(TENANT))
def test_a_token_for_an_api_needs_a_grant_for_that_client_and_api(request: TokenRequest) -> None:
    decision = _decide(request)
    if isinstance(decision, Issued) and decision.api is not None:
        assert _grant_of(decision) is not None


@CHECKS
@given(token_requests(TENANT))
def test_issued_scopes_never_exceed_the_grant(request: TokenRequest) -> None:
    decision = _decide(request)
    if isinstance(decision, Issued) and decision.api is not None:
        grant = _grant_of(decision)
        assert grant is not None
        api = TENANT.index.apis[decision.api]
        allowed = set(api.scopes) if grant.allow_all_scopes else set(grant.scope)
        assert set((decision.scope or "").split()) <= allowed


@CHECKS
@given(token_requests(TENANT))
def test_only_the_clients_own_secret_gets_a_token(request: TokenRequest) -> None:
    decision = _decide(request)
    if isinstance(decision, Issued):
        client = TENANT.index.clients[decision.client_id]
        presented = request.client_secret or request.basic_client_secret
        assert presented is not None
        assert presented.get_secret_value() in {s.get_secret_value() for s in client.client_secrets}
        assert _presented_client(request) == client.client_id


@CHECKS
@given(token_requests(TENANT))
def test_the_issuer_is_the_domain_the_request_came_through(request: TokenRequest) -> None:
    decision = _decide(request)
    if isinstance(decision, Issued):
        domains = {TENANT.domain, *(d.domain for d in TENANT.custom_domains)}
        host = (request.domain or TENANT.domain).split(":")[0].rstrip(".").lower()
        if host in domains:  # another host is served as the tenant's default domain
            assert decision.issuer == f"https://{host}/"
