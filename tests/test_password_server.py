"""The password and MFA grants over real HTTP, driven by real clients, and the users file.

* auth0-python's ``GetToken.login`` (password and password-realm, ``auth0-forwarded-for``);
* Authlib's ``OAuth2Session.fetch_token`` (the password grant, then the MFA grants);
* pyotp is the user's authenticator app.

The test ids name each client and its version. The users come from Auth0's bulk user import
format (``tests/fixtures/users/users.json``, bcrypt hashes) and the companion file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import jwt
import pyotp
import pytest

from claimsengine import Tenant
from claimsengine.adapters.cli import main
from claimsengine.adapters.loader import ConfigError
from claimsengine.adapters.server import LiveServer, asgi_client, create_app, serve_in_thread
from claimsengine.adapters.signing import KeySet
from claimsengine.adapters.users import password_matches, with_users

ROOT = Path(__file__).resolve().parent.parent
SPEC_TENANT = ROOT / "specs" / "tenants" / "northwind.json"
USERS = ROOT / "tests" / "fixtures" / "users" / "users.json"
ASSIGNMENTS = ROOT / "tests" / "fixtures" / "users" / "assignments.json"
ORDERS = "https://api.northwind.com/orders"
CLIENT_ID, CLIENT_SECRET = "nw-ropg-0001", "spec-ropg-secret-JJJJ"
FRANK, FRANK_PASSWORD = "frank@northwind.com", "fixture-password-frank"
HENRY, HENRY_PASSWORD, HENRY_TOTP = "henry@northwind.com", "fixture-password-henry", "KRSXG5CTMVRXEZLUKN2XAZLSKNSWG4TFOQ"
NOW = 1_767_226_500
MFA_OTP = "http://auth0.com/oauth/grant-type/mfa-otp"
HENRY_LOGIN = {
    "grant_type": "password",
    "client_id": CLIENT_ID,
    "client_secret": CLIENT_SECRET,
    "username": HENRY,
    "password": HENRY_PASSWORD,
}
MFA_RECOVERY = "http://auth0.com/oauth/grant-type/mfa-recovery-code"
AUTH0_PYTHON = f"auth0-python {version('auth0-python')}"
AUTHLIB = f"Authlib {version('authlib')}"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return with_users(Tenant.model_validate_json(SPEC_TENANT.read_text()), USERS, ASSIGNMENTS)


@pytest.fixture(scope="module")
def keys() -> KeySet:
    return KeySet.generate(seed=9)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def server(tenant: Tenant, keys: KeySet, clock: Clock) -> Iterator[LiveServer]:
    with serve_in_thread(create_app(tenant, keys=keys, clock=clock), tls=True) as live:
        yield live


@pytest.fixture
def mfa_tenant(tenant: Tenant) -> Tenant:
    """The spec tenant with MFA required for every application."""
    fields = {name: getattr(tenant, name) for name in Tenant.model_fields}
    return Tenant.model_validate({**fields, "mfa_policy": "all-applications"})


@pytest.fixture
def mfa_server(mfa_tenant: Tenant, keys: KeySet, clock: Clock) -> Iterator[LiveServer]:
    with serve_in_thread(create_app(mfa_tenant, keys=keys, clock=clock), tls=True) as live:
        yield live


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


# --- auth0-python ---------------------------------------------------------------------------


@pytest.mark.interop
@pytest.mark.parametrize("client", [AUTH0_PYTHON])
def test_get_token_login_gets_user_tokens_for_a_password(client: str, server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from auth0.authentication import GetToken
    from auth0.authentication.exceptions import Auth0Error

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_path))
    sdk = GetToken(server.domain, CLIENT_ID, client_secret=CLIENT_SECRET)
    # The default directory (grant_type password), through the organization frank is a member of.
    issued = sdk.login(FRANK, FRANK_PASSWORD, scope="openid profile", audience=ORDERS, grant_type="password", forwarded_for="203.0.113.7")
    claims = _claims(issued["access_token"])
    assert (claims["sub"], claims["gty"], claims["azp"]) == ("auth0|frank0001", "password", CLIENT_ID)
    assert issued["scope"] == "openid profile read:orders"  # all API scopes, narrowed by RBAC (order-viewer)
    assert _claims(issued["id_token"])["name"] == "Frank Osei"
    # password-realm (the SDK's default grant), by username, in the connection the users file names.
    realm = sdk.login("frank", FRANK_PASSWORD, realm="Username-Password-Authentication", audience=ORDERS)
    assert _claims(realm["access_token"])["sub"] == "auth0|frank0001"
    for username, password, text in (
        (FRANK, "not-franks-password", "Wrong email or password."),
        ("nobody@northwind.com", FRANK_PASSWORD, "Wrong email or password."),
        ("grace@northwind.com", "fixture-password-grace", "user is blocked"),
    ):
        with pytest.raises(Auth0Error) as refused:
            sdk.login(username, password, audience=ORDERS, grant_type="password")
        assert (refused.value.status_code, refused.value.error_code, refused.value.message) == (403, "invalid_grant", text), client
    other = GetToken(server.domain, "nw-web-0001", client_secret="spec-web-secret-GGGG")
    with pytest.raises(Auth0Error) as not_allowed:
        other.login(FRANK, FRANK_PASSWORD, grant_type="password")
    assert (not_allowed.value.status_code, not_allowed.value.message) == (403, "Grant type 'password' not allowed for the client.")


# --- Authlib --------------------------------------------------------------------------------


@pytest.mark.interop
@pytest.mark.parametrize("client", [AUTHLIB])
def test_authlib_password_grant(client: str, server: LiveServer) -> None:
    from authlib.integrations.requests_client import OAuth2Session, OAuthError

    url, ca = f"{server.url}/oauth/token", str(server.ca_path)
    with OAuth2Session(CLIENT_ID, CLIENT_SECRET, token_endpoint_auth_method="client_secret_post") as session:
        issued = session.fetch_token(url, username=FRANK, password=FRANK_PASSWORD, audience=ORDERS, scope="offline_access", verify=ca)
        assert _claims(issued["access_token"])["gty"] == "password", client
        assert issued["refresh_token"]  # offline_access: the API allows it and the client has refresh_token
        refreshed = session.fetch_token(url, grant_type="refresh_token", refresh_token=issued["refresh_token"], verify=ca)
        assert _claims(refreshed["access_token"])["sub"] == "auth0|frank0001"
        with pytest.raises(OAuthError) as refused:
            session.fetch_token(url, username=FRANK, password="wrong", verify=ca)
    assert (refused.value.error, refused.value.description) == ("invalid_grant", "Wrong email or password.")


@pytest.mark.interop
@pytest.mark.parametrize("client", [f"{AUTH0_PYTHON} + {AUTHLIB} + pyotp {version('pyotp')}"])
def test_mfa_required_then_the_otp_and_the_recovery_code_complete_the_login(
    client: str, mfa_server: LiveServer, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from auth0.authentication import GetToken
    from auth0.authentication.exceptions import Auth0Error
    from authlib.integrations.requests_client import OAuth2Session, OAuthError

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(mfa_server.ca_path))
    sdk = GetToken(mfa_server.domain, CLIENT_ID, client_secret=CLIENT_SECRET)

    def mfa_token() -> str:
        with pytest.raises(Auth0Error) as required:
            sdk.login(HENRY, HENRY_PASSWORD, scope="openid", audience=ORDERS, grant_type="password")
        assert (required.value.status_code, required.value.error_code) == (403, "mfa_required")
        assert required.value.message == "Multifactor authentication required"
        content = required.value.content  # the SDK keeps the whole error body
        assert isinstance(content, dict)
        token: str = content["mfa_token"]
        return token

    url, ca = f"{mfa_server.url}/oauth/token", str(mfa_server.ca_path)
    with OAuth2Session(CLIENT_ID, CLIENT_SECRET, token_endpoint_auth_method="client_secret_post") as session:

        def complete(grant_type: str, **params: str) -> dict[str, Any]:
            token: dict[str, Any] = session.fetch_token(url, grant_type=grant_type, verify=ca, **params)
            return token

        first = mfa_token()
        clock.now += 45  # the user opens the authenticator app
        otp = pyotp.TOTP(HENRY_TOTP).at(clock.now)
        issued = complete(MFA_OTP, mfa_token=first, otp=otp)
        assert _claims(issued["access_token"])["sub"] == "auth0|henry0001", client
        assert issued["scope"] == "openid"
        # The same code again: used.
        with pytest.raises(OAuthError) as reused:
            complete(MFA_OTP, mfa_token=first, otp=otp)
        assert (reused.value.error, reused.value.description) == ("invalid_grant", "Invalid otp_code.")
        # The recovery code works once.
        assert complete(MFA_RECOVERY, mfa_token=mfa_token(), recovery_code="FIXTURERECOVERYHENRY0001")["access_token"]
        with pytest.raises(OAuthError) as used:
            complete(MFA_RECOVERY, mfa_token=mfa_token(), recovery_code="FIXTURERECOVERYHENRY0001")
        assert used.value.error == "invalid_grant"
        # Ten minutes later the mfa_token is expired; a forged one is malformed.
        late = mfa_token()
        clock.now += 600
        with pytest.raises(OAuthError) as expired:
            complete(MFA_OTP, mfa_token=late, otp=pyotp.TOTP(HENRY_TOTP).at(clock.now))
        assert (expired.value.error, expired.value.description) == ("expired_token", "mfa_token is expired")
        with pytest.raises(OAuthError) as forged:
            complete(MFA_OTP, mfa_token=late[:-4] + "AAAA", otp="123456")
        assert (forged.value.error, forged.value.description) == ("invalid_grant", "Malformed mfa_token")


# --- in process: the wire, the store, secrets ---------------------------------------------------


def test_passwords_and_second_factors_never_reach_the_captured_requests(mfa_tenant: Tenant, keys: KeySet, clock: Clock) -> None:
    app = create_app(mfa_tenant, keys=keys, clock=clock)
    with asgi_client(app) as client:
        body = HENRY_LOGIN
        answer = client.post("/oauth/token", data=body)
        assert answer.status_code == 403
        token = answer.json()["mfa_token"]
        otp = pyotp.TOTP(HENRY_TOTP).at(clock.now)
        done = client.post(
            "/oauth/token",
            json={"grant_type": MFA_OTP, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "mfa_token": token, "otp": otp},
        )
        assert done.status_code == 200
    seen = json.dumps(app.state.auth0.requests()) + json.dumps(app.state.auth0.decisions())
    for secret in (HENRY_PASSWORD, token, otp, CLIENT_SECRET):
        assert secret not in seen


def test_the_mfa_token_is_sealed_and_tied_to_the_client(mfa_tenant: Tenant, keys: KeySet, clock: Clock) -> None:
    app = create_app(mfa_tenant, keys=keys, clock=clock)
    with asgi_client(app) as client:
        body = HENRY_LOGIN
        token = client.post("/oauth/token", data=body).json()["mfa_token"]
        assert "henry" not in token  # encrypted, not merely encoded
        other = {"grant_type": MFA_OTP, "client_id": "nw-web-0001", "client_secret": "spec-web-secret-GGGG", "mfa_token": token, "otp": "0"}
        answer = client.post("/oauth/token", data=other)
    # nw-web-0001 lacks the mfa-otp grant: refused before the token is looked at.
    assert (answer.status_code, answer.json()["error"]) == (403, "unauthorized_client")


# --- the users file ----------------------------------------------------------------------------


def test_users_in_auth0s_import_format_join_the_tenant(tenant: Tenant) -> None:
    frank = tenant.index.users["auth0|frank0001"]
    assert frank.connection == "Username-Password-Authentication"
    assert frank.username == "frank"
    assert frank.roles == ("order-viewer",)
    assert frank.profile["app_metadata"] == {"plan": "gold"}
    assert frank.profile["email"] == FRANK
    assert ("org_acme0000000001", "auth0|frank0001") in tenant.index.memberships
    assert tenant.index.users["auth0|grace0001"].blocked
    assert tenant.index.users["auth0|henry0001"].mfa is not None
    assert password_matches(tenant, FRANK.upper(), FRANK_PASSWORD) == ("auth0|frank0001",)
    assert password_matches(tenant, FRANK, "fixture-password-grace") == ()
    assert password_matches(tenant, "bob@northwind.com", "anything") == ()  # no hash: never matches


def test_an_export_jobs_json_lines_are_read(tmp_path: Path) -> None:
    lines = tmp_path / "export.json"
    rows = json.loads(USERS.read_text())
    lines.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    loaded = with_users(Tenant(domain="acme.auth0.com"), lines)
    assert [u.user_id for u in loaded.users] == ["auth0|frank0001", "auth0|grace0001", "auth0|henry0001"]


def test_every_problem_of_the_users_files_is_reported_with_its_path(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    users.write_text(json.dumps([{"email": "a@b.c", "password_hash": "plain-text", "favourite": 1}, "nope", {"name": "no id"}]))
    assignments = tmp_path / "assignments.json"
    assignments.write_text(json.dumps({"roles": {"auth0|ghost": ["x"]}, "organizations": {"nowhere": []}, "colour": "red"}))
    with pytest.raises(ConfigError) as failed:
        with_users(Tenant(domain="acme.auth0.com"), users, assignments)
    shown = str(failed.value)
    for expected in (
        "users.json:[0].favourite: unknown field",
        "users.json:[0].password_hash: must be a bcrypt hash",
        "users.json:[1]: each user must be an object",
        "users.json:[2]: a user needs a user_id or an email",
        "assignments.json:colour: unknown key",
        "assignments.json:roles.auth0|ghost: no user 'auth0|ghost'",
        "assignments.json:organizations.nowhere: no organization 'nowhere'",
    ):
        assert expected in shown
    assert "plain-text" not in shown
    bad_secret = tmp_path / "bad.json"
    bad_secret.write_text(json.dumps({"mfa": {"auth0|frank0001": {"totp_secret": "not base32!"}}}))
    with pytest.raises(ConfigError, match="base32"):
        with_users(Tenant(domain="acme.auth0.com"), USERS, bad_secret)


def test_the_cli_decides_a_password_grant_for_a_users_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    body = {"grant_type": "password", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "username": FRANK, "password": FRANK_PASSWORD}
    request.write_text(json.dumps(body))
    arguments = ["--tenant", str(SPEC_TENANT), "--users", str(USERS), "--user-assignments", str(ASSIGNMENTS), "decide"]
    main([*arguments, "--request", str(request), "--now", str(NOW)])
    out = capsys.readouterr().out
    assert '"kind": "issued"' in out
    assert FRANK_PASSWORD not in out
    request.write_text(json.dumps({**body, "password": "wrong"}))
    main([*arguments, "--request", str(request), "--now", str(NOW)])
    assert "Wrong email or password." in capsys.readouterr().out
