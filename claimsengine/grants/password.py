"""The resource owner password grants: ``password`` (the tenant's default directory) and
``http://auth0.com/oauth/grant-type/password-realm`` (the connection named by ``realm``).

The order of the checks is the one observed on Auth0 (facts-issue9 P7): the grant type is
enabled (common step), then the connection is resolved, then the credentials are checked.
The password itself never reaches the core: the adapter checks it against the users' bcrypt
hashes and passes ``password_valid_for``, the users it matches. After the credentials the
login goes through the same steps as ``/authorize``: audience, organization, scopes (RBAC,
user access policies), post-login Actions; then MFA (``mfa_required`` with an mfa_token) or
the tokens.
"""

from __future__ import annotations

from claimsengine.auth0 import OIDC_SCOPES
from claimsengine.model import Api, Client, Issued, MfaGrant, Rejected, TokenRequest, User
from claimsengine.rules import ErrorCode, Rule
from claimsengine.steps import (
    GRANT_TYPES_URI,
    NoAudience,
    Trace,
    api_for,
    check_membership,
    clean,
    parameter,
    post_login,
    requested_audience,
    split_scope,
    user_organization,
    user_scopes,
)
from claimsengine.tokens import Draft, issue

__all__ = ["password", "password_realm"]

WRONG_CREDENTIALS = "Wrong email or password."
NO_DEFAULT_CONNECTION = "Authorization server not configured with default connection."
MFA_REQUIRED_TEXT = "Multifactor authentication required"


def password(req: TokenRequest, client: Client, domain: str, t: Trace) -> Issued | Rejected:
    """``grant_type=password``: the user logs in to the tenant's default directory."""
    third_party = _third_party(req, client, t)
    if third_party is not None:
        return third_party
    connection = clean(t.tenant.default_directory)
    if connection is None:
        # password.no_default_connection (facts-issue9 P3): a 500, observed.
        return t.reject(Rule.PASSWORD_NO_CONNECTION, ErrorCode.SERVER_ERROR, NO_DEFAULT_CONNECTION, ref="default_directory")
    t.note(Rule.PASSWORD_DEFAULT_DIRECTORY, connection, "default_directory")
    return _login(req, client, domain, connection, t)


def password_realm(req: TokenRequest, client: Client, domain: str, t: Trace) -> Issued | Rejected:
    """``grant_type=http://auth0.com/oauth/grant-type/password-realm``: ``realm`` names the connection."""
    third_party = _third_party(req, client, t)
    if third_party is not None:
        return third_party
    realm = parameter(req, "realm") or ""
    t.note(Rule.PASSWORD_REALM, realm)
    return _login(req, client, domain, realm.strip(), t)


def _user(username: str, connection: str, t: Trace) -> User | None:
    """The user of ``connection`` whose e-mail (any case) or username is ``username``. A blank
    username names nobody (it would otherwise match a user without an e-mail)."""
    wanted = username.strip()
    if not wanted:
        return None
    lowered = wanted.lower()
    for user in t.tenant.users:
        if user.connection == connection and ((user.email or "").lower() == lowered or user.username == wanted):
            return user
    return None


def _third_party(req: TokenRequest, client: Client, t: Trace) -> Rejected | None:
    """R12: third-party applications never get the password grants, whatever they list; like
    a grant that is not enabled, this is decided before the connection and the credentials."""
    if client.is_first_party:
        return None
    return t.reject(
        Rule.PASSWORD_THIRD_PARTY,
        ErrorCode.UNAUTHORIZED_CLIENT,
        f"Grant type '{clean(req.grant_type)}' not allowed for the client.",
        error_uri=GRANT_TYPES_URI,
        ref=t.index.ref(client),
    )


def _login(req: TokenRequest, client: Client, domain: str, connection: str, t: Trace) -> Issued | Rejected:
    user = _user(parameter(req, "username") or "", connection, t)
    # password.credentials_invalid (P4): one answer for an unknown user and a wrong password.
    if user is None:
        return t.reject(Rule.PASSWORD_INVALID, ErrorCode.INVALID_GRANT, WRONG_CREDENTIALS, detail=f"no such user in {connection}")
    ref = t.index.ref(user)
    if user.user_id not in req.password_valid_for:
        return t.reject(Rule.PASSWORD_INVALID, ErrorCode.INVALID_GRANT, WRONG_CREDENTIALS, detail="the password does not match", ref=ref)
    if user.blocked:
        # password.user_blocked (P5)
        return t.reject(Rule.PASSWORD_USER_BLOCKED, ErrorCode.INVALID_GRANT, "user is blocked", ref=ref)
    t.note(Rule.PASSWORD_VALID, f"{user.user_id} in {connection}", ref)
    api = _audience(req, t)
    if isinstance(api, Rejected):
        return api
    org = user_organization(parameter(req, "organization"), client, t)
    if isinstance(org, Rejected):
        return org
    member = check_membership(org, user, t)
    if member is not None:
        return member
    requested = split_scope(req.scope)
    if api is not None and all(s in OIDC_SCOPES for s in requested):
        # scope.password_all_api_scopes (P2): no API scope asked for: every scope the API defines.
        requested = (*requested, *api.scopes)
        t.note(Rule.SCOPE_PASSWORD_ALL_API_SCOPES, f"{len(api.scopes)} API scopes", t.index.ref(api))
    scopes = user_scopes(requested, client, user, api, org, t)
    if isinstance(scopes, Rejected):
        return scopes
    outcome = post_login(client, user, api, org, domain, scopes, t)
    if isinstance(outcome, Rejected):
        return outcome
    scopes, access_claims, id_claims = outcome
    if t.tenant.mfa_policy == "all-applications":
        # mfa.required (P8): everything is decided but the second factor; the mfa_token holds it.
        grant = MfaGrant(
            client_id=client.client_id,
            user_id=user.user_id,
            audience=api.identifier if api is not None else None,
            scope=scopes,
            organization_id=org.id if org is not None else None,
            domain=domain,
            issued_at=t.now,
            access_claims=access_claims,
            id_claims=id_claims,
        )
        return t.reject(Rule.MFA_REQUIRED, ErrorCode.MFA_REQUIRED, MFA_REQUIRED_TEXT, ref="mfa_policy", mfa=grant)
    draft = Draft(
        client=client,
        domain=domain,
        scopes=scopes,
        api=api,
        user=user,
        org=org,
        gty="password",
        custom=access_claims,
        id_claims=id_claims,
        refreshable=True,
    )
    return issue(draft, t)


def _audience(req: TokenRequest, t: Trace) -> Api | Rejected | None:
    """The API the token is for: named, the default audience, the MFA API, or none (/userinfo)."""
    audience = requested_audience(req.audience, req.resource, t)
    if isinstance(audience, NoAudience) or audience == t.tenant.userinfo_audience:
        t.note(Rule.AUDIENCE_USERINFO, "the token will be for /userinfo only")
        return None
    mfa = t.index.mfa_api
    if audience == mfa.identifier:
        t.audience = audience
        t.note(Rule.AUDIENCE_MFA_API, audience, t.index.ref(mfa))
        return mfa
    return api_for(audience, t, unknown=Rule.AUDIENCE_UNKNOWN, text="Service not enabled within domain")
