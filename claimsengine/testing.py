"""Hypothesis strategies for tenants and requests, so anyone can test the invariants.

Identifiers come from small closed pools (the abstract-behaviour technique): requests
then hit existing, missing and borderline entries often, instead of random strings that
never match anything. Use :func:`requests_for` with your own tenant::

    @given(st.data())
    def test_my_tenant_never_issues_without_a_grant(data):
        request = data.draw(requests_for(MY_TENANT))
        ...

Requires the ``hypothesis`` package (in the ``dev`` extra).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from pydantic import SecretStr

from claimsengine.grants import GRANTS
from claimsengine.model import (
    Api,
    AuthorizeRequest,
    Behaviour,
    Client,
    ClientGrant,
    Consent,
    CustomDomain,
    DefaultOrganization,
    GrantRef,
    MfaEnrollment,
    Organization,
    OrganizationMember,
    Permission,
    QuotaUsage,
    Role,
    Tenant,
    TokenQuota,
    TokenRequest,
    User,
)

CANONICAL = "acme.auth0.com"
CUSTOM = ("login.acme.com", "id.acme.io")
API_POOL = ("https://api.acme.com", "urn:acme:ledger", "https://reports.acme.com/")
SCOPE_POOL = ("read", "write", "delete", "admin")
CLIENT_POOL = ("app-m2m", "app-web", "app-spa", "app-partner")
ORG_POOL = (("org_one", "one"), ("org_two", "two"))
USER_POOL = ("auth0|u1", "auth0|u2")
ROLE_POOL = ("reader", "writer")
CALLBACK = "https://app.acme.com/cb"
LOCAL_CALLBACK = "http://localhost:3000/cb"
# Grant types a client may list: every declared grant, and implicit (which only /authorize knows).
GRANT_TYPES = (*(g.value for g in GRANTS), "implicit")
# The database connections users live in, and an authenticator app's TOTP secret (base32).
CONNECTION_POOL = ("Username-Password-Authentication", "employees")
TOTP_SECRET = "JBSWY3DPEHPK3PXP"
PASSWORD_GRANTS = ("password", "http://auth0.com/oauth/grant-type/password-realm")
# A grant type no tenant supports.
UNSUPPORTED_GRANT = "urn:example:grant-type:unsupported"


def secret_for(client_id: str) -> str:
    """The secret the generated tenants give ``client_id`` (so requests can present it)."""
    return f"{client_id}-s3cr3t-value"


def _subset(pool: tuple[str, ...]) -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(st.sampled_from(pool), unique=True, max_size=len(pool)).map(tuple)


@st.composite
def apis(draw: st.DrawFn, identifier: str) -> Api:
    """An API with the identifier given and drawn settings."""
    alg = draw(st.sampled_from(["RS256", "PS256", "HS256"]))
    lifetime = draw(st.integers(min_value=60, max_value=2592000))
    return Api.model_validate(
        {
            "identifier": identifier,
            "scopes": draw(_subset(SCOPE_POOL)),
            "signing_alg": alg,
            "signing_secret": f"signing-secret-for-{len(identifier)}" if alg == "HS256" else None,
            "token_lifetime": lifetime,
            "token_lifetime_for_web": draw(st.integers(min_value=60, max_value=lifetime)),
            "token_dialect": draw(st.sampled_from(["access_token", "access_token_authz", "rfc9068_profile", "rfc9068_profile_authz"])),
            "enforce_policies": draw(st.booleans()),
            "allow_offline_access": draw(st.booleans()),
            "skip_consent_for_verifiable_first_party_clients": draw(st.booleans()),
            "client_policy": draw(st.sampled_from(["require_client_grant", "require_client_grant", "deny_all"])),
            "user_policy": draw(st.sampled_from(["allow_all", "allow_all", "require_client_grant", "deny_all"])),
        }
    )


@st.composite
def clients(draw: st.DrawFn, client_id: str, org_ids: tuple[str, ...], *, confidential: bool = False) -> Client:
    """A client with drawn type, authentication method and grant types."""
    app_types = ["non_interactive", "regular_web"] if confidential else ["non_interactive", "regular_web", "spa", "native", None]
    app_type = draw(st.sampled_from(app_types))
    methods = [None, "client_secret_post", "client_secret_basic"] + ([] if confidential else [None, "none"])
    method = draw(st.sampled_from(methods))
    default_org = None
    if draw(st.booleans()) and org_ids:
        default_org = DefaultOrganization(organization_id=draw(st.sampled_from(org_ids)))
    return Client.model_validate(
        {
            "client_id": client_id,
            "name": client_id.replace("-", " ").title(),
            "client_secrets": [secret_for(client_id)],
            "app_type": app_type,
            "token_endpoint_auth_method": method,
            "grant_types": draw(st.sampled_from([None, None, None]) | _subset(GRANT_TYPES)),
            "is_first_party": draw(st.booleans() | st.just(True)),
            "callbacks": [CALLBACK, LOCAL_CALLBACK],
            "organization_usage": draw(st.sampled_from(["deny", "deny", "allow", "require"])),
            "default_organization": default_org,
            "token_quota": draw(st.none() | st.builds(TokenQuota, per_hour=st.integers(0, 5), per_day=st.none())),
            "third_party_security_mode": draw(st.sampled_from([None, "strict", "permissive"])),
        }
    )


def _enrollment(user_id: str) -> MfaEnrollment:
    return MfaEnrollment(totp_secret=SecretStr(TOTP_SECRET), recovery_code=SecretStr(f"RECOVERY{user_id[-1]}"))


@st.composite
def tenants(draw: st.DrawFn) -> Tenant:
    """A small tenant over the closed pools: APIs, clients, grants, organizations, users."""
    custom = draw(_subset(CUSTOM))
    identifiers = draw(_subset(API_POOL))
    api_list = [draw(apis(i)) for i in identifiers]
    orgs = draw(st.lists(st.sampled_from(ORG_POOL), unique=True, max_size=len(ORG_POOL)))
    org_ids = tuple(o[0] for o in orgs)
    client_ids = draw(st.lists(st.sampled_from(CLIENT_POOL), unique=True, min_size=1))
    # The first client is confidential, so client_credentials requests often get far.
    client_list = [draw(clients(c, org_ids, confidential=i == 0)) for i, c in enumerate(client_ids)]
    audiences = (*identifiers, f"https://{CANONICAL}/api/v2/")
    grants: list[ClientGrant] = []
    seen: set[tuple[str, str, str]] = set()
    for n, client in enumerate(client_list):
        picks = draw(st.lists(st.sampled_from(audiences), unique=True, min_size=1 if n == 0 else 0))
        for audience in picks:
            subject = "client" if n == 0 else draw(st.sampled_from(["client", "client", "user"]))
            if (client.client_id, audience, subject) in seen:
                continue
            seen.add((client.client_id, audience, subject))
            allow_all = draw(st.booleans()) and draw(st.booleans())
            grants.append(
                ClientGrant.model_validate(
                    {
                        "client_id": client.client_id,
                        "audience": audience,
                        "subject_type": subject,
                        "scope": () if allow_all else draw(_subset((*SCOPE_POOL, "undefined:scope"))),
                        "allow_all_scopes": allow_all,
                        "organization_usage": draw(st.sampled_from(["deny", "deny", "allow", "require"])),
                        "allow_any_organization": draw(st.booleans()),
                    }
                )
            )
    if draw(st.booleans()) and identifiers:
        grants.append(ClientGrant(default_for="third_party_clients", audience=identifiers[0], scope=SCOPE_POOL[:2]))
    roles = [
        Role(name=name, permissions=tuple(Permission(resource_server_identifier=a, permission_name=s) for a in identifiers for s in perms))
        for name, perms in (("reader", ("read",)), ("writer", ("write", "delete")))
    ]
    users = [
        User(
            user_id=u,
            profile={"name": f"User {u[-1]}", "email": f"{u[-2:]}@acme.com", "nickname": u[-2:]},
            roles=draw(_subset(ROLE_POOL)),
            connection=_mostly(draw, CONNECTION_POOL[0], CONNECTION_POOL[1], None),
            username=u[-2:],
            blocked=draw(st.booleans()) and draw(st.booleans()),
            mfa=MfaEnrollment(totp_secret=SecretStr(TOTP_SECRET), recovery_code=SecretStr(f"RECOVERY{u[-1]}"))
            if draw(st.booleans())
            else None,
            consents=tuple(
                Consent(client_id=c.client_id, audience=a, scopes=SCOPE_POOL)
                for c in client_list
                for a in identifiers
                if draw(st.booleans()) and draw(st.booleans())
            ),
        )
        for u in draw(st.lists(st.sampled_from(USER_POOL), unique=True, min_size=1))
    ]
    organizations = []
    for org_id, name in orgs:
        refs = [GrantRef(client_id=g.client_id or "", audience=g.audience) for g in grants if g.client_id and draw(st.booleans())]
        members = [OrganizationMember(user_id=u.user_id, roles=draw(_subset(ROLE_POOL))) for u in users if draw(st.booleans())]
        organizations.append(
            Organization(
                id=org_id,
                name=name,
                client_grants=tuple(dict.fromkeys(refs)),
                members=tuple(members),
                third_party_client_access=draw(st.sampled_from(["block", "allow"])),
            )
        )
    behaviour = Behaviour(
        no_grant_wording=draw(st.sampled_from(["2018", "2024", "2025"])),
        client_auth_error=draw(st.sampled_from(["observed", "documented"])),
        client_credentials_scopes=draw(st.sampled_from(["grant", "requested"])),
        unknown_host=draw(st.sampled_from(["default", "default", "default", "reject"])),
        strict_auth_method=draw(st.booleans()),
        grant_scopes_filtered_by_api_scopes=draw(st.booleans()),
        delete_current_user_scope=draw(st.booleans()),
        org_login_includes_user_level_rbac=draw(st.booleans()),
        code_exchange_cross_domain=draw(st.sampled_from(["issue_with_authorize_domain", "refuse"])),
        third_party_security_mode=draw(st.sampled_from(["strict", "permissive"])),
        id_token_auth_time=draw(st.sampled_from(["when_max_age", "always"])),
    )
    return Tenant(
        domain=CANONICAL,
        custom_domains=tuple(CustomDomain(domain=d) for d in custom),
        default_audience=draw(st.sampled_from([None, None, "", *identifiers, "https://missing.acme.com"])),
        resource_parameter_profile=draw(st.sampled_from(["audience", "compatibility"])),
        allow_organization_name_in_authentication_api=draw(st.booleans()),
        allow_api1_non_global_clients=draw(st.booleans()) and draw(st.booleans()),
        organizations_for_m2m=draw(st.booleans() | st.just(True)),
        apis=tuple(api_list),
        clients=tuple(client_list),
        client_grants=tuple(grants),
        organizations=tuple(organizations),
        roles=tuple(roles),
        users=tuple(users),
        default_directory=_mostly(draw, CONNECTION_POOL[0], None, CONNECTION_POOL[1]),
        mfa_policy=_mostly(draw, "never", "all-applications"),
        behaviour=behaviour,
    )


def _mostly(draw: st.DrawFn, good: Any, *others: Any) -> Any:
    """``good`` four times in five; otherwise one of ``others``, so failures still get drawn."""
    return draw(st.sampled_from([good] * 4 * max(len(others), 1) + list(others))) if others else good


def _audiences(tenant: Tenant) -> list[str | None]:
    return [
        None,
        "",
        *(a.identifier for a in tenant.apis),
        tenant.management_api_identifier,
        tenant.userinfo_audience,
        "https://unknown.example.com",
        *(f"https://{d.domain}/api/v2/" for d in tenant.custom_domains),
    ]


def _domains(tenant: Tenant) -> list[str | None]:
    return [None, tenant.domain, *(d.domain for d in tenant.custom_domains), "evil.example.net", f"{tenant.domain}:443"]


def _scope_pool(tenant: Tenant) -> list[str]:
    oidc = {"openid", "profile", "email", "offline_access"}
    # Management API scopes: an admin one and the current-user family's (issue 8).
    management = {"read:users", "read:current_user", "delete:current_user"}
    return sorted({s for a in tenant.apis for s in a.scopes} | set(SCOPE_POOL) | oidc | management)


def _organizations(tenant: Tenant) -> list[str | None]:
    return [None, "", "org_unknown", *(o.id for o in tenant.organizations), *(o.name for o in tenant.organizations)]


def _secret_of(client: Client) -> str | None:
    """The client's real secret: what the tenant (or the loader's credentials) gives it."""
    return client.client_secrets[0].get_secret_value() if client.client_secrets else None


def _associated_organizations(tenant: Tenant, client_id: str, audience: str) -> list[str]:
    """Organizations whose client grants include this client and audience."""
    return [o.id for o in tenant.organizations if any(r.client_id == client_id and r.audience == audience for r in o.client_grants)]


def _m2m_grants(tenant: Tenant) -> list[tuple[Client, ClientGrant]]:
    """(client, grant) pairs a real client_credentials request can use: a client that
    authenticates with a secret, may use the grant type, and has a client grant."""
    pairs = []
    for client in tenant.clients:
        if client.auth_method.value not in ("client_secret_post", "client_secret_basic") or not client.client_secrets:
            continue
        if "client_credentials" not in client.effective_grant_types:
            continue
        pairs += [(client, g) for g in tenant.client_grants if g.client_id == client.client_id and g.subject_type == "client"]
    return pairs


@st.composite
def valid_token_requests(draw: st.DrawFn, tenant: Tenant) -> TokenRequest:
    """A client_credentials request made only of the tenant's real parts: a client's effective
    credentials, one of its grants' audiences, the granted scopes (all, some or none), a domain
    of the tenant and, where the grant allows or requires one, an associated organization.
    Most of these issue; the rest are refused by a rule the tenant really has (a quota, a policy)."""
    pairs = _m2m_grants(tenant)
    if not pairs:
        return draw(token_requests(tenant))
    client, grant = draw(st.sampled_from(pairs))
    secret = SecretStr(_secret_of(client) or "")
    granted = grant.scope
    scope = draw(st.sampled_from([None, " ".join(granted), " ".join(granted[:1])]))
    orgs = _associated_organizations(tenant, client.client_id, grant.audience)
    usage = grant.organization_usage or client.organization_usage
    organization = None
    if orgs and usage != "deny" and (usage == "require" or draw(st.booleans())):
        organization = draw(st.sampled_from(orgs))
    # Tokens already issued this hour: any count when no quota applies, else none yet.
    quotas = (client.token_quota, tenant.default_token_quota, *(o.token_quota for o in tenant.organizations))
    used = draw(st.integers(0, 10_000)) if all(q is None for q in quotas) else 0
    fields: dict[str, Any] = {
        "domain": draw(st.sampled_from([None, tenant.domain, *(d.domain for d in tenant.custom_domains)])),
        "grant_type": "client_credentials",
        "audience": grant.audience,
        "scope": scope or None,
        "organization": organization,
        "quota_usage": QuotaUsage(client_hour=used),
    }
    if client.auth_method.value == "client_secret_basic":
        fields.update(basic_client_id=client.client_id, basic_client_secret=secret)
    else:
        fields.update(client_id=client.client_id, client_secret=secret)
    return TokenRequest(**fields)


@st.composite
def mixed_token_requests(draw: st.DrawFn, tenant: Tenant) -> TokenRequest:
    """A client_credentials request against ``tenant``: mostly well-formed, wrong in any part."""
    able = [
        c
        for c in tenant.clients
        if c.auth_method.value != "none"
        and "client_credentials" in c.effective_grant_types
        and any(g.client_id == c.client_id for g in tenant.client_grants)
    ]
    client = _mostly(draw, draw(st.sampled_from(able)), *tenant.clients) if able else draw(st.sampled_from(tenant.clients))
    client_id = _mostly(draw, client.client_id, "no-such-client")
    real = _secret_of(client) if client_id == client.client_id else None
    secret = _mostly(draw, real or secret_for(client_id), "wrong-secret", None)
    method = client.auth_method.value
    basic = _mostly(draw, method == "client_secret_basic", method != "client_secret_basic")
    grants = [g for g in tenant.client_grants if g.client_id == client.client_id and g.subject_type == "client"]
    grant = draw(st.sampled_from(grants)) if grants else None
    audience = _mostly(draw, grant.audience if grant else None, *_audiences(tenant))
    granted = grant.scope if grant else ()
    scope = draw(
        st.sampled_from([None, None, " ".join(granted), " ".join(granted[:1])])
        | st.lists(st.sampled_from(_scope_pool(tenant)), max_size=3).map(" ".join)
    )
    orgs = _associated_organizations(tenant, client.client_id, grant.audience) if grant else []
    fields: dict[str, Any] = {
        "domain": _mostly(draw, draw(st.sampled_from(_domains(tenant)[:3])), *_domains(tenant)),
        "grant_type": _mostly(
            draw, "client_credentials", None, "", UNSUPPORTED_GRANT, *(g.value for g in GRANTS if g.value != "client_credentials")
        ),
        "audience": audience,
        "scope": scope,
        "organization": _mostly(draw, draw(st.sampled_from([None, *orgs])), *_organizations(tenant)),
        "resource": _mostly(draw, None, *_audiences(tenant)),
        "quota_usage": QuotaUsage(client_hour=draw(st.integers(0, 6))),
    }
    presented = SecretStr(secret) if secret is not None else None
    if basic:
        fields["basic_client_id"] = client_id
        fields["basic_client_secret"] = presented
    else:
        fields["client_id"] = client_id
        fields["client_secret"] = presented
    return TokenRequest(**fields)


def token_requests(tenant: Tenant) -> st.SearchStrategy[TokenRequest]:
    """client_credentials requests against ``tenant``: half made of its real credentials,
    grants, audiences, scopes, domains and organizations (:func:`valid_token_requests`), half
    mixed with wrong parts (:func:`mixed_token_requests`), so a property about issued tokens
    is tested on tokens that are really issued."""
    return st.one_of(valid_token_requests(tenant), mixed_token_requests(tenant))


@st.composite
def authorize_requests(draw: st.DrawFn, tenant: Tenant) -> AuthorizeRequest:
    """An ``/authorize`` request against ``tenant``, with a drawn user and consent answer; the
    client's own callbacks, its grants' audiences and the tenant's users come first."""
    able = [c for c in tenant.clients if "authorization_code" in c.effective_grant_types and c.organization_usage != "require"]
    client = _mostly(draw, draw(st.sampled_from(able)), *tenant.clients) if able else draw(st.sampled_from(tenant.clients))
    api_ids = [a.identifier for a in tenant.apis]
    user_ids = [u.user_id for u in tenant.users] or list(USER_POOL)
    callback = client.callbacks[0] if client.callbacks else CALLBACK
    return AuthorizeRequest(
        domain=_mostly(draw, None, *_domains(tenant)),
        client_id=_mostly(draw, client.client_id, "no-such-client", None),
        redirect_uri=_mostly(draw, callback, None, LOCAL_CALLBACK, "https://evil.example.net/cb"),
        response_type=_mostly(draw, "code", "token", None),
        audience=_mostly(draw, draw(st.sampled_from(api_ids)) if api_ids else None, *_audiences(tenant)),
        scope=draw(st.lists(st.sampled_from(_scope_pool(tenant)), max_size=5).map(" ".join) | st.none()),
        organization=_mostly(draw, None, *_organizations(tenant)),
        prompt=_mostly(draw, None, "none", "consent", "login"),
        state=draw(st.sampled_from([None, "xyz"])),
        user_id=_mostly(draw, draw(st.sampled_from(user_ids)), None, "auth0|nobody"),
        consent=_mostly(draw, True, None, False),
        code_challenge=draw(st.sampled_from([None, "challenge-value"])),
        code_challenge_method=_mostly(draw, "S256", None, "plain", "md5"),
        max_age=draw(st.sampled_from([None, None, "0", "3600", "soon"])),
        new_session_id=draw(st.sampled_from([None, "session-1", "session-2"])),
    )


@st.composite
def password_requests(draw: st.DrawFn, tenant: Tenant) -> TokenRequest:
    """A password or password-realm request against ``tenant``: a user's e-mail or username (or
    nobody's), and the users whose password hash the adapter found to match (mostly the
    named user's, sometimes none: a wrong password)."""
    able = [c for c in tenant.clients if any(g in c.effective_grant_types for g in PASSWORD_GRANTS)]
    client = _mostly(draw, draw(st.sampled_from(able)), *tenant.clients) if able else draw(st.sampled_from(tenant.clients))
    user = draw(st.sampled_from(tenant.users)) if tenant.users else None
    names = [n for u in tenant.users for n in (u.email, u.username) if n is not None]
    named = (user.email or user.user_id) if user is not None else "nobody@acme.com"
    username = _mostly(draw, named, *names, "nobody@acme.com", "")
    matched = _mostly(draw, (user.user_id,) if user is not None else (), (), tuple(u.user_id for u in tenant.users))
    grant_type = draw(st.sampled_from(PASSWORD_GRANTS))
    parameters = {"username": username, "password": "a-password"}
    if grant_type != "password":
        realm = _mostly(draw, user.connection if user is not None and user.connection else CONNECTION_POOL[0], *CONNECTION_POOL, "")
        parameters["realm"] = realm
    api_ids = [a.identifier for a in tenant.apis]
    return TokenRequest(
        domain=_mostly(draw, None, *_domains(tenant)),
        grant_type=grant_type,
        client_id=client.client_id,
        client_secret=SecretStr(secret_for(client.client_id)) if client.auth_method.value != "none" else None,
        audience=_mostly(draw, draw(st.sampled_from(api_ids)) if api_ids else None, *_audiences(tenant), tenant.mfa_api_identifier),
        scope=draw(st.lists(st.sampled_from(_scope_pool(tenant)), max_size=5).map(" ".join) | st.none()),
        organization=_mostly(draw, None, *_organizations(tenant)),
        password_valid_for=matched,
        parameters={name: SecretStr(value) for name, value in parameters.items()},
    )


def requests_for(tenant: Tenant) -> st.SearchStrategy[TokenRequest | AuthorizeRequest]:
    """Token (client credentials or password) or authorize requests against ``tenant``."""
    return st.one_of(token_requests(tenant), password_requests(tenant), authorize_requests(tenant))
