"""Refresh-token rotation, reuse detection and expiry; revocation; the device authorization
flow: properties (each name is the sentence it proves) and the edges the golden cases in
``specs/cases/refresh_rotation.json`` and ``specs/cases/device.json`` do not reach."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from claimsengine import (
    AuthorizationGrant,
    Behaviour,
    DeviceApprovalRequest,
    DeviceApproved,
    DeviceAuthorized,
    DeviceCodeRequest,
    DeviceGrant,
    DeviceState,
    GrantKey,
    Issued,
    RefreshFamily,
    RefreshGrant,
    RefreshTokenSettings,
    Rejected,
    Revoked,
    RevokeRequest,
    Rule,
    Tenant,
    TokenRequest,
    decide,
)
from claimsengine.tokens import family_expiry

ROOT = Path(__file__).resolve().parent.parent
NOW = 1_767_226_500
ORDERS = "https://api.northwind.com/orders"
DOMAIN = "northwind.auth0.com"
DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
BASE: dict[str, Any] = json.loads((ROOT / "specs" / "tenants" / "northwind.json").read_text())
TENANT = Tenant.model_validate(BASE)


def _tenant(client_id: str, *, behaviour: dict[str, Any] | None = None, **changes: Any) -> Tenant:
    """The spec tenant with one client changed."""
    data = json.loads(json.dumps(BASE))
    for client in data["clients"]:
        if client["client_id"] == client_id:
            client.update(changes)
    if behaviour is not None:
        data["behaviour"] = behaviour
    return Tenant.model_validate(data)


def _grant(**changes: Any) -> RefreshGrant:
    values: dict[str, Any] = {
        "client_id": "nw-tv-0001",
        "user_id": "auth0|alice",
        "audience": ORDERS,
        "scope": ("openid", "offline_access", "read:orders"),
        "domain": DOMAIN,
        "family": "fam",
        "expires_at": NOW + 86400,
    }
    values.update(changes)
    return RefreshGrant.model_validate(values)


def _refresh(grant: RefreshGrant | None, family: RefreshFamily | None, client_id: str = "nw-tv-0001") -> TokenRequest:
    return TokenRequest(
        grant_type="refresh_token",
        client_id=client_id,
        refresh_token=SecretStr("rt"),
        refresh_grant=grant,
        refresh_family=family,
    )


# ---------------------------------------------------------------------------------------
# Rotation, as the server drives it: decide with the family's facts, record what was decided
# ---------------------------------------------------------------------------------------

steps = st.lists(
    st.tuples(st.integers(0, 8), st.integers(0, 25), st.sampled_from(["present", "present", "present", "revoke"])),
    max_size=14,
)


@given(st.sampled_from([0, 5, 30]), steps)
def test_a_rotated_refresh_token_is_never_accepted_twice_outside_the_leeway_and_a_revoked_family_never_issues_again(
    leeway: int, moves: list[tuple[int, int, str]]
) -> None:
    settings = {"rotation_type": "rotating", "expiration_type": "expiring", "leeway": leeway, "token_lifetime": 86400}
    tenant = _tenant("nw-tv-0001", refresh_token={**settings, "idle_token_lifetime": 3600})
    family = RefreshFamily(last_used=NOW)
    tokens = [_grant()]
    first_accepted: dict[int, int] = {}
    revoked = False
    now = NOW
    for pick, elapsed, move in moves:
        now += elapsed
        if move == "revoke":
            family, revoked = family.model_copy(update={"revoked": True}), True
            continue
        presented = tokens[pick % len(tokens)]
        decision = decide(_refresh(presented, family), tenant, now=now)
        if isinstance(decision, Rejected):
            if decision.rejected_by is Rule.REFRESH_REUSED:
                family, revoked = family.model_copy(update={"revoked": True}), True
            continue
        assert not revoked, "a revoked family issued a token"
        generation = presented.generation
        if generation in first_accepted:
            assert now < first_accepted[generation] + leeway, "a rotated-away token was accepted outside the leeway"
        first_accepted.setdefault(generation, now)
        assert decision.refresh is not None
        assert decision.refresh_family is not None
        assert decision.refresh.family == presented.family
        assert decision.refresh.expires_at == presented.expires_at
        assert decision.refresh.generation == decision.refresh_family.current
        family = decision.refresh_family
        tokens.append(decision.refresh)


@given(st.integers(0, 10), st.integers(1, 100_000))
def test_a_non_rotating_token_is_accepted_again_until_its_idle_window_ends(uses: int, gap: int) -> None:
    settings = {"rotation_type": "non-rotating", "expiration_type": "expiring", "token_lifetime": 10_000_000}
    tenant = _tenant("nw-tv-0001", refresh_token={**settings, "idle_token_lifetime": 50_000})
    family = RefreshFamily(last_used=NOW)
    grant = _grant(expires_at=None)
    now = NOW
    for _ in range(uses):
        now += gap
        decision = decide(_refresh(grant, family), tenant, now=now)
        assert isinstance(decision, Issued) == (gap < 50_000)
        if isinstance(decision, Rejected):
            assert decision.rejected_by is Rule.REFRESH_IDLE_EXPIRED
            return
        assert decision.refresh is None
        assert decision.refresh_family is not None
        family = decision.refresh_family


@given(
    st.sampled_from(["rotating", "non-rotating"]),
    st.booleans(),
    st.sampled_from(["spa", "native", "regular_web"]),
)
def test_a_browser_application_gets_a_refresh_token_only_with_rotation(rotation: str, switch: bool, app_type: str) -> None:
    expiring = "expiring" if rotation == "rotating" else "non-expiring"
    tenant = _tenant(
        "nw-spa-legacy-0001",
        app_type=app_type,
        refresh_token={"rotation_type": rotation, "expiration_type": expiring},
        behaviour={"spa_refresh_requires_rotation": switch},
    )
    code = AuthorizationGrant(
        client_id="nw-spa-legacy-0001",
        user_id="auth0|alice",
        audience=None,
        scope=("openid", "offline_access"),
        domain=DOMAIN,
        issued_at=NOW,
        code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        code_challenge_method="S256",
    )
    request = TokenRequest(
        grant_type="authorization_code",
        client_id="nw-spa-legacy-0001",
        code=SecretStr("c"),
        code_verifier="dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        code_grant=code,
    )
    decision = decide(request, tenant, now=NOW)
    assert isinstance(decision, Issued)
    withheld = app_type == "spa" and rotation == "non-rotating" and switch
    assert (decision.refresh is None) == withheld
    assert (decision.refresh_family is None) == withheld


# ---------------------------------------------------------------------------------------
# Device authorization
# ---------------------------------------------------------------------------------------

DEVICE_GRANT = DeviceGrant(
    client_id="nw-tv-0001", audience=ORDERS, scope=("openid", "read:orders"), domain=DOMAIN, issued_at=NOW, expires_in=900, interval=5
)
APPROVED = AuthorizationGrant(
    client_id="nw-tv-0001", user_id="auth0|alice", audience=ORDERS, scope=("openid", "read:orders"), domain=DOMAIN, issued_at=NOW
)


def _poll(state: DeviceState | None, grant: DeviceGrant | None = DEVICE_GRANT, client_id: str = "nw-tv-0001") -> TokenRequest:
    return TokenRequest(grant_type=DEVICE, client_id=client_id, device_code=SecretStr("dc"), device_grant=grant, device_state=state)


@given(
    st.sampled_from(["pending", "denied"]),
    st.one_of(st.none(), st.integers(NOW - 100, NOW + 2000)),
    st.integers(0, 2000),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_a_device_code_never_issues_before_approval(
    status: Literal["pending", "denied"], last_poll: int | None, elapsed: int, reported: bool, redeemed: bool, with_grant: bool
) -> None:
    state = DeviceState(
        status=status, grant=APPROVED if with_grant else None, last_poll=last_poll, expired_reported=reported, redeemed=redeemed
    )
    decision = decide(_poll(state), TENANT, now=NOW + elapsed)
    assert isinstance(decision, Rejected)


@given(st.integers(0, 2000), st.one_of(st.none(), st.integers(NOW - 100, NOW + 2000)))
def test_an_approved_device_code_issues_only_in_time_at_the_interval_and_once(elapsed: int, last_poll: int | None) -> None:
    now = NOW + elapsed
    state = DeviceState(status="approved", grant=APPROVED, last_poll=last_poll)
    decision = decide(_poll(state), TENANT, now=now)
    in_time = elapsed < 900
    polite = last_poll is None or now - last_poll >= 5
    assert isinstance(decision, Issued) == (in_time and polite)
    again = decide(_poll(state.model_copy(update={"redeemed": True})), TENANT, now=now)
    assert isinstance(again, Rejected)


def test_expired_token_is_answered_once_then_invalid_grant() -> None:
    state = DeviceState(last_poll=NOW)
    first = decide(_poll(state), TENANT, now=NOW + 900)
    then = decide(_poll(state.model_copy(update={"expired_reported": True})), TENANT, now=NOW + 905)
    assert isinstance(first, Rejected)
    assert first.error == "expired_token"
    assert first.status == 403
    assert isinstance(then, Rejected)
    assert then.error == "invalid_grant"


def test_a_device_code_of_another_client_or_whose_user_is_gone_is_invalid() -> None:
    other = decide(_poll(DeviceState(), grant=DEVICE_GRANT.model_copy(update={"client_id": "nw-spa-0001"})), TENANT, now=NOW)
    gone = APPROVED.model_copy(update={"user_id": "auth0|nobody"})
    vanished = decide(_poll(DeviceState(status="approved", grant=gone)), TENANT, now=NOW)
    for decision in (other, vanished):
        assert isinstance(decision, Rejected)
        assert decision.rejected_by is Rule.DEVICE_CODE_INVALID


def test_device_authorization_edges() -> None:
    missing = decide(DeviceCodeRequest(domain=DOMAIN), TENANT, now=NOW)
    unknown = decide(DeviceCodeRequest(domain=DOMAIN, client_id="nobody"), TENANT, now=NOW)
    bad_host = decide(
        DeviceCodeRequest(domain="evil.example", client_id="nw-tv-0001"), _tenant("x", behaviour={"unknown_host": "reject"}), now=NOW
    )
    userinfo = decide(DeviceCodeRequest(domain=DOMAIN, client_id="nw-tv-0001", scope="openid"), TENANT, now=NOW)
    assert isinstance(missing, Rejected)
    assert missing.rejected_by is Rule.CLIENT_ID_MISSING
    assert isinstance(unknown, Rejected)
    assert unknown.rejected_by is Rule.CLIENT_UNKNOWN
    assert isinstance(bad_host, Rejected)
    assert bad_host.rejected_by is Rule.DOMAIN_UNKNOWN
    assert isinstance(userinfo, DeviceAuthorized)
    assert userinfo.grant.audience is None
    assert Rule.AUDIENCE_USERINFO in [r.rule for r in userinfo.trace]


def test_device_approval_edges() -> None:
    gone_client = decide(
        DeviceApprovalRequest(device_grant=DEVICE_GRANT.model_copy(update={"client_id": "gone"}), user_id="auth0|alice"), TENANT, now=NOW
    )
    gone_api = decide(
        DeviceApprovalRequest(device_grant=DEVICE_GRANT.model_copy(update={"audience": "https://gone"}), user_id="auth0|alice"),
        TENANT,
        now=NOW,
    )
    denied = _tenant("nw-tv-0001")
    deny_all = json.loads(json.dumps(BASE))
    for api in deny_all["apis"]:
        if api["identifier"] == ORDERS:
            api["user_policy"] = "deny_all"
    refused = decide(DeviceApprovalRequest(device_grant=DEVICE_GRANT, user_id="auth0|alice"), Tenant.model_validate(deny_all), now=NOW)
    approved = decide(DeviceApprovalRequest(device_grant=DEVICE_GRANT, user_id="auth0|alice"), denied, now=NOW)
    assert isinstance(gone_client, Rejected)
    assert gone_client.rejected_by is Rule.DEVICE_CODE_INVALID
    assert isinstance(gone_api, Rejected)
    assert gone_api.rejected_by is Rule.AUDIENCE_UNKNOWN
    assert isinstance(refused, Rejected)
    assert refused.rejected_by is Rule.POLICY_USER_DENY_ALL
    userinfo = decide(
        DeviceApprovalRequest(device_grant=DEVICE_GRANT.model_copy(update={"audience": None}), user_id="auth0|bob"), TENANT, now=NOW
    )
    assert isinstance(userinfo, DeviceApproved)
    assert userinfo.grant.audience is None
    assert isinstance(approved, DeviceApproved)
    assert approved.grant.scope == ("openid", "read:orders")


def test_an_action_that_denies_refuses_the_approval() -> None:
    def deny(event: Any, api: Any) -> None:
        api.access.deny("no devices")

    tenant = TENANT.model_copy(update={"post_login_actions": (deny,)})
    decision = decide(DeviceApprovalRequest(device_grant=DEVICE_GRANT, user_id="auth0|alice"), tenant, now=NOW)
    assert isinstance(decision, Rejected)
    assert decision.rejected_by is Rule.ACTION_DENY


# ---------------------------------------------------------------------------------------
# Refresh edges and settings
# ---------------------------------------------------------------------------------------


def test_an_untracked_refresh_token_rotates_by_generation_alone() -> None:
    decision = decide(_refresh(_grant(family=None, generation=3), None), TENANT, now=NOW)
    assert isinstance(decision, Issued)
    assert decision.refresh is not None
    assert decision.refresh.generation == 4
    assert decision.refresh_family is None
    web = decide(
        _refresh(_grant(family=None, client_id="nw-tv-0001"), None), _tenant("nw-tv-0001", refresh_token=None, app_type="native"), now=NOW
    )
    assert isinstance(web, Issued)
    assert web.refresh is None
    assert web.refresh_family is None


def test_the_legacy_refresh_error_applies_to_every_unusable_token() -> None:
    tenant = _tenant("x", behaviour={"refresh_error": "legacy"})
    decision = decide(_refresh(_grant(), RefreshFamily(last_used=NOW, revoked=True)), tenant, now=NOW)
    assert isinstance(decision, Rejected)
    assert decision.error == "access_denied"
    assert decision.rejected_by is Rule.REFRESH_REVOKED


def test_refresh_settings_follow_auth0s_constraints_and_defaults() -> None:
    with pytest.raises(ValidationError, match="expiration_type expiring"):
        RefreshTokenSettings(rotation_type="rotating")
    with pytest.raises(ValidationError, match="may not exceed"):
        RefreshTokenSettings(expiration_type="expiring", token_lifetime=10, idle_token_lifetime=20)
    assert RefreshTokenSettings().absolute_lifetime is None
    assert RefreshTokenSettings().idle_lifetime is None
    infinite = RefreshTokenSettings(expiration_type="expiring", infinite_token_lifetime=True, infinite_idle_token_lifetime=True)
    assert infinite.absolute_lifetime is None
    assert infinite.idle_lifetime is None
    finite = RefreshTokenSettings(expiration_type="expiring", infinite_token_lifetime=False, token_lifetime=100, idle_token_lifetime=50)
    assert (finite.absolute_lifetime, finite.idle_lifetime) == (100, 50)
    client = TENANT.index.clients["nw-web-0001"]
    assert family_expiry(client, None, NOW) is None
    tv = TENANT.index.clients["nw-tv-0001"]
    assert family_expiry(tv, NOW + 10, NOW) == NOW + 10
    assert family_expiry(tv, None, NOW) == NOW + 1296000
    assert Behaviour().device_code_lifetime == 900
    assert Behaviour().device_code_interval == 5


# ---------------------------------------------------------------------------------------
# Revocation
# ---------------------------------------------------------------------------------------


@given(st.sampled_from(["nw-tv-0001", "nw-spa-0001", "nw-web-0001"]), st.sampled_from(["nw-tv-0001", "nw-spa-0001", "nw-web-0001"]))
def test_a_client_revokes_only_its_own_refresh_tokens(owner: str, caller: str) -> None:
    secret = SecretStr("spec-web-secret-GGGG") if caller == "nw-web-0001" else None
    request = RevokeRequest(client_id=caller, client_secret=secret, token=SecretStr("rt"), refresh_grant=_grant(client_id=owner))
    decision = decide(request, TENANT, now=NOW)
    assert isinstance(decision, Revoked)
    assert (decision.family is not None) == (owner == caller)


@given(
    st.booleans(),
    st.sampled_from(["auth0|alice", "auth0|bob"]),
    st.sampled_from([ORDERS, None]),
    st.sampled_from(["fam", "other"]),
)
def test_revocation_names_the_tokens_own_grant_exactly_when_revocation_deletes_grants(
    deletes_grant: bool, user: str, audience: str | None, family: str
) -> None:
    tenant = _tenant("x", behaviour={"revoke_refresh_token_grant": deletes_grant})
    grant = _grant(user_id=user, audience=audience, family=family)
    decision = decide(RevokeRequest(client_id="nw-tv-0001", token=SecretStr("rt"), refresh_grant=grant), tenant, now=NOW)
    assert isinstance(decision, Revoked)
    assert decision.family == family
    if deletes_grant:
        assert decision.grant == GrantKey(client_id="nw-tv-0001", user_id=user, audience=audience)
        assert decision.trace[-1].rule is Rule.REVOKE_GRANT
    else:
        assert decision.grant is None
        assert decision.trace[-1].rule is Rule.REVOKE_FAMILY


def test_revocation_on_an_unknown_domain_is_refused() -> None:
    tenant = _tenant("x", behaviour={"unknown_host": "reject"})
    decision = decide(RevokeRequest(domain="evil.example", client_id="nw-tv-0001", token=SecretStr("t")), tenant, now=NOW)
    assert isinstance(decision, Rejected)
    assert decision.rejected_by is Rule.DOMAIN_UNKNOWN


def test_a_parameter_of_another_json_type_is_refused_at_device_authorization_and_revocation() -> None:
    device = decide(DeviceCodeRequest(domain=DOMAIN, client_id="nw-tv-0001", malformed=("audience",)), TENANT, now=NOW)
    revoke = decide(RevokeRequest(domain=DOMAIN, client_id="nw-tv-0001", malformed=("client_secret",)), TENANT, now=NOW)
    for decision in (device, revoke):
        assert isinstance(decision, Rejected)
        assert decision.rejected_by is Rule.PARAMETER_MALFORMED
