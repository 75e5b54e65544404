"""Revocation and the user's grant (issue 9): the tenant toggle "Refresh Token Revocation
Deletes Grant" (``behaviour.revoke_refresh_token_grant``) over HTTP on a real loopback server,
and the server's side in the store: every refresh-token family is linked to its grant (user,
application, audience) and revoking the grant revokes all of them at once.

The store's own contract (``swap_all``, ``link``) runs against every backend in
``test_store.py``; here the lifecycle's use of it runs against memory and SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from claimsengine import DeviceApproved, GrantKey, RefreshFamily, RefreshGrant, Tenant
from claimsengine.adapters import lifecycle
from claimsengine.adapters.server import LiveServer, create_app, serve_in_thread
from claimsengine.adapters.signing import KeySet
from claimsengine.adapters.store import MemoryStore, Store, open_store

ROOT = Path(__file__).resolve().parent.parent
NOW = 1_767_226_500
TV = "nw-tv-0001"
ORDERS = "https://api.northwind.com/orders"
DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
KEYS = KeySet.generate(seed=21)


@pytest.fixture(scope="module", params=[False, True], ids=["toggle-off", "toggle-on"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The spec tenant with the toggle off (in memory) or on (in a SQLite store)."""
    data = json.loads((ROOT / "specs" / "tenants" / "northwind.json").read_text())
    data["behaviour"] = {"revoke_refresh_token_grant": request.param}
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('store') / 'state.sqlite3'}") if request.param else MemoryStore()
    app = create_app(Tenant.model_validate(data), keys=KEYS, default_user="auth0|alice", store=store)
    with serve_in_thread(app) as live:
        yield live
    store.close()


def device_refresh_token(server: LiveServer, http: httpx.Client, **audience: str) -> str:
    """A refresh token for alice on the TV app, through the device flow (``audience`` or none)."""
    started = http.post(f"{server.url}/oauth/device/code", data={"client_id": TV, "scope": "openid offline_access", **audience})
    assert started.status_code == 200, started.text
    grant = started.json()
    assert isinstance(server.fake.answer_device(grant["user_code"], None, approve=True), DeviceApproved)
    issued = http.post(f"{server.url}/oauth/token", data={"grant_type": DEVICE, "client_id": TV, "device_code": grant["device_code"]})
    assert issued.status_code == 200, issued.text
    token: str = issued.json()["refresh_token"]
    return token


def refresh(server: LiveServer, http: httpx.Client, token: str) -> httpx.Response:
    return http.post(f"{server.url}/oauth/token", data={"grant_type": "refresh_token", "client_id": TV, "refresh_token": token})


def test_revoking_one_refresh_token_revokes_the_grants_other_tokens_only_with_the_toggle_on(server: LiveServer) -> None:
    deletes_grant = server.tenant.behaviour.revoke_refresh_token_grant
    with httpx.Client(timeout=10) as http:
        first = device_refresh_token(server, http, audience=ORDERS)
        # The same user, application and audience on another device: another family, one grant.
        second = device_refresh_token(server, http, audience=ORDERS)
        rotated = refresh(server, http, second)
        assert rotated.status_code == 200, rotated.text
        second = rotated.json()["refresh_token"]
        # Another audience is another grant.
        userinfo_only = device_refresh_token(server, http)
        revoked = http.post(f"{server.url}/oauth/revoke", data={"client_id": TV, "token": first})
        assert (revoked.status_code, revoked.content) == (200, b"")
        assert refresh(server, http, first).json() == {"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."}
        assert refresh(server, http, second).status_code == (403 if deletes_grant else 200)
        assert refresh(server, http, userinfo_only).status_code == 200


def _refresh_grant(user: str, audience: str | None, client_id: str = TV) -> RefreshGrant:
    return RefreshGrant(client_id=client_id, user_id=user, audience=audience, scope=("offline_access",), domain="northwind.auth0.com")


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = MemoryStore() if request.param == "memory" else open_store(f"sqlite:///{tmp_path / 'state.sqlite3'}")
    yield opened
    opened.close()


def test_revoking_a_grant_revokes_every_family_linked_to_it_and_no_other(store: Store) -> None:
    alice = [lifecycle.start_family(store, _refresh_grant("auth0|alice", ORDERS), RefreshFamily(last_used=NOW), NOW) for _ in range(3)]
    others = [
        lifecycle.start_family(store, _refresh_grant("auth0|bob", ORDERS), RefreshFamily(last_used=NOW), NOW),
        lifecycle.start_family(store, _refresh_grant("auth0|alice", None), RefreshFamily(last_used=NOW), NOW),
        lifecycle.start_family(store, _refresh_grant("auth0|alice", ORDERS, "nw-web-0001"), RefreshFamily(last_used=NOW), NOW),
    ]
    key = GrantKey(client_id=TV, user_id="auth0|alice", audience=ORDERS)
    assert lifecycle.revoke_grant(store, key, NOW + 1, alice[0]) == 3
    assert all(lifecycle.load_family(store, name, NOW + 1)[1] == RefreshFamily(last_used=NOW, revoked=True) for name in alice)
    assert all(lifecycle.load_family(store, name, NOW + 1)[1] == RefreshFamily(last_used=NOW) for name in others)
    # Revoking again changes nothing; a family revoked on its own is left as it is.
    assert lifecycle.revoke_grant(store, key, NOW + 2) == 0


@given(
    st.lists(st.tuples(st.sampled_from(["auth0|alice", "auth0|bob"]), st.sampled_from([ORDERS, None])), min_size=1, max_size=8), st.data()
)
def test_after_a_grant_is_revoked_each_of_its_families_is_revoked_and_every_other_family_is_untouched(
    grants: list[tuple[str, str | None]], data: st.DataObject
) -> None:
    store = MemoryStore()
    families = {
        lifecycle.start_family(store, _refresh_grant(user, audience), RefreshFamily(last_used=NOW), NOW): (user, audience)
        for user, audience in grants
    }
    user, audience = data.draw(st.sampled_from(grants))
    revoked = lifecycle.revoke_grant(store, GrantKey(client_id=TV, user_id=user, audience=audience), NOW)
    assert revoked == sum(1 for owner in families.values() if owner == (user, audience))
    for name, owner in families.items():
        found = lifecycle.load_family(store, name, NOW)[1]
        assert found is not None
        assert found.revoked == (owner == (user, audience))
