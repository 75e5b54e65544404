"""What the server keeps about refresh-token families and device codes, in the shared store.

The core decides on facts (``RefreshFamily``, ``DeviceState``); this module reads them from
the store before a decision and records what the decision changed afterwards, with one
compare-and-set per fact: a record changes only from the value the decision was made on.
When another request (in this worker or another) changed the fact in between, the swap
fails and the caller decides again on the new fact, so a rotating refresh token rotates
once and a device code issues once, whatever the number of workers.

Nothing here decides: which state follows is in the decision (``Issued.refresh_family``),
or in its rule (``refresh.reuse_detected`` revokes the family, ``device.expired`` with
``expired_token`` is answered once, ``revoke.grant`` revokes every family of a user's grant).

Every family is linked in the store under its grant (user, application, audience) when it
starts, so revoking the grant revokes all of them in one all-or-nothing swap.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, ValidationError

from claimsengine import (
    DeviceApprovalRequest,
    DeviceApproved,
    DeviceGrant,
    DeviceState,
    ErrorCode,
    GrantKey,
    Issued,
    RefreshFamily,
    RefreshGrant,
    Rejected,
    Rule,
    Tenant,
    TokenRequest,
    decide,
)
from claimsengine.adapters.store import Store

__all__ = [
    "DEVICE",
    "FAMILY",
    "GRANT_FAMILIES",
    "DeviceRecord",
    "Facts",
    "answer_device",
    "load_device",
    "load_family",
    "new_user_code",
    "normal_user_code",
    "record",
    "revoke_family",
    "revoke_grant",
    "start_device",
    "start_family",
]

FAMILY = "refresh_family"
# The index from a user's grant (user, application, audience) to its refresh-token families.
GRANT_FAMILIES = "grant_families"
DEVICE = "device_code"
# A family that never expires is kept this long (ten years).
FOREVER = 10 * 365 * 86400
# A device code's record outlives the code by this much, so a late poll still learns
# ``expired_token`` once (instead of a bare ``invalid_grant``).
DEVICE_GRACE = 3600
# Auth0's BASE20 user-code alphabet: consonants only, so no word can be spelled.
USER_CODE_LETTERS = "BCDFGHJKLMNPQRSTVWXZ"
# How often a write is retried when another request changed the record in between.
MAX_SWAPS = 16


class DeviceRecord(BaseModel):
    """A device code's record: what the device asked for and what happened since."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    grant: DeviceGrant
    state: DeviceState


@dataclass(frozen=True)
class Facts:
    """The facts a token request was decided on, as read (``raw``: the stored text)."""

    family_raw: str | None = None
    device_raw: str | None = None


def load_family(store: Store, family: str, now: int) -> tuple[str | None, RefreshFamily | None]:
    raw = store.load(FAMILY, family, now=now)
    if raw is None:
        return None, None
    try:
        return raw, RefreshFamily.model_validate_json(raw)
    except ValidationError:
        return raw, None


def load_device(store: Store, user_code: str, now: int) -> tuple[str | None, DeviceRecord | None]:
    raw = store.load(DEVICE, user_code, now=now)
    if raw is None:
        return None, None
    try:
        return raw, DeviceRecord.model_validate_json(raw)
    except ValidationError:
        return raw, None


def read_facts(store: Store, req: TokenRequest, now: int) -> tuple[TokenRequest, Facts]:
    """``req`` with the store's facts about its refresh token's family and its device code."""
    family_raw = device_raw = None
    update: dict[str, object] = {}
    grant = req.refresh_grant
    if grant is not None and grant.family is not None:
        family_raw, update["refresh_family"] = load_family(store, grant.family, now)
    device = req.device_grant
    if device is not None and device.user_code is not None:
        device_raw, found = load_device(store, device.user_code, now)
        update["device_state"] = found.state if found is not None and found.grant == device else None
    return (req.model_copy(update=update) if update else req), Facts(family_raw, device_raw)


def _family_expiry(family: RefreshFamily, now: int) -> int:
    return family.expires_at if family.expires_at is not None else now + FOREVER


def record(store: Store, req: TokenRequest, decision: Issued | Rejected, facts: Facts, now: int) -> Issued | Rejected | None:
    """Record what ``decision`` changed; the decision to send (a new family gets its id), or
    ``None`` when a fact changed since it was read (decide again)."""
    device = req.device_grant
    if device is not None and device.user_code is not None and facts.device_raw is not None and req.device_state is not None:
        state = req.device_state.model_copy(update={"last_poll": now})
        if isinstance(decision, Issued):
            state = state.model_copy(update={"redeemed": True})
        elif decision.rejected_by is Rule.DEVICE_EXPIRED and decision.error is ErrorCode.EXPIRED_TOKEN:
            state = state.model_copy(update={"expired_reported": True})
        value = DeviceRecord(grant=device, state=state).model_dump_json()
        expires = device.issued_at + device.expires_in + DEVICE_GRACE
        if not store.swap(DEVICE, device.user_code, facts.device_raw, value, expires=max(expires, now + 1), now=now):
            return None
    grant = req.refresh_grant
    if grant is not None and grant.family is not None and facts.family_raw is not None and req.refresh_family is not None:
        after: RefreshFamily | None = None
        if isinstance(decision, Issued):
            after = decision.refresh_family
        elif decision.rejected_by is Rule.REFRESH_REUSED:
            after = req.refresh_family.model_copy(update={"revoked": True})
        if after is not None:
            value = after.model_dump_json()
            if not store.swap(FAMILY, grant.family, facts.family_raw, value, expires=_family_expiry(after, now), now=now):
                return None
    if isinstance(decision, Issued) and decision.refresh is not None and decision.refresh.family is None:
        return _start_family(store, decision, decision.refresh, now)
    return decision


def _start_family(store: Store, decision: Issued, refresh: RefreshGrant, now: int) -> Issued:
    """A new refresh token starts a family: the server draws its id and records its state."""
    family_id = start_family(store, refresh, decision.refresh_family or RefreshFamily(last_used=now), now)
    return decision.model_copy(update={"refresh": refresh.model_copy(update={"family": family_id})})


def start_family(store: Store, refresh: RefreshGrant, family: RefreshFamily, now: int) -> str:
    """Record a new family in ``family``'s state under a fresh id, linked to ``refresh``'s grant; the id."""
    value = family.model_dump_json()
    expires = _family_expiry(family, now)
    while True:
        family_id = secrets.token_urlsafe(18)
        if store.swap(FAMILY, family_id, None, value, expires=expires, now=now):
            key = GrantKey(client_id=refresh.client_id, user_id=refresh.user_id, audience=refresh.audience)
            store.link(GRANT_FAMILIES, grant_key(key), family_id, expires=expires, now=now)
            return family_id


def grant_key(grant: GrantKey) -> str:
    """The store key of a user's grant: its user, application and audience."""
    return json.dumps([grant.client_id, grant.user_id, grant.audience])


def revoke_family(store: Store, family: str, now: int) -> None:
    """Mark ``family`` revoked (a no-op when the store does not know it)."""
    for _ in range(MAX_SWAPS):
        raw, found = load_family(store, family, now)
        if raw is None or found is None or found.revoked:
            return
        after = found.model_copy(update={"revoked": True})
        if store.swap(FAMILY, family, raw, after.model_dump_json(), expires=_family_expiry(after, now), now=now):
            return
    raise RuntimeError("the refresh-token family kept changing")


def revoke_grant(store: Store, grant: GrantKey, now: int, family: str | None = None) -> int:
    """Mark every refresh-token family of ``grant`` revoked (and ``family``, the one the
    revoked token belongs to) in one all-or-nothing swap; how many were revoked by this call."""
    for _ in range(MAX_SWAPS):
        names = set(store.linked(GRANT_FAMILIES, grant_key(grant), now=now))
        if family is not None:
            names.add(family)
        changes: dict[str, tuple[str | None, str, int]] = {}
        for name in sorted(names):
            raw, found = load_family(store, name, now)
            if raw is not None and found is not None and not found.revoked:
                after = found.model_copy(update={"revoked": True})
                changes[name] = (raw, after.model_dump_json(), _family_expiry(after, now))
        if store.swap_all(FAMILY, changes, now=now):
            return len(changes)
    raise RuntimeError("the grant's refresh-token families kept changing")


# ---------------------------------------------------------------------------------------
# Device codes
# ---------------------------------------------------------------------------------------


def new_user_code() -> str:
    """Eight BASE20 letters, ``XXXX-XXXX`` (Auth0's default user-code format)."""
    letters = "".join(secrets.choice(USER_CODE_LETTERS) for _ in range(8))
    return f"{letters[:4]}-{letters[4:]}"


def normal_user_code(entered: str) -> str:
    """A user code as a user may type it (any case, with or without the hyphen or spaces)."""
    letters = "".join(c for c in entered.upper() if c.isalnum())
    return f"{letters[:4]}-{letters[4:]}" if len(letters) > 4 else letters


def start_device(store: Store, grant: DeviceGrant, now: int) -> DeviceGrant:
    """Record a new device code's (pending) state under a fresh user code; the grant with it."""
    expires = grant.issued_at + grant.expires_in + DEVICE_GRACE
    while True:
        with_code = grant.model_copy(update={"user_code": new_user_code()})
        value = DeviceRecord(grant=with_code, state=DeviceState()).model_dump_json()
        assert with_code.user_code is not None
        if store.swap(DEVICE, with_code.user_code, None, value, expires=expires, now=now):
            return with_code


def answer_device(
    store: Store, tenant: Tenant, user_code: str, user_id: str | None, *, approve: bool, now: int
) -> DeviceApproved | Rejected | str:
    """The user answers a user code: approval is the core's decision (``DeviceApproved`` or
    ``Rejected``), denial is recorded as it is. A string says why nothing was recorded:
    ``"unknown"`` (no such user code, or forgotten) or ``"answered"`` (answered before)."""
    code = normal_user_code(user_code)
    for _ in range(MAX_SWAPS):
        raw, found = load_device(store, code, now)
        if raw is None or found is None:
            return "unknown"
        if found.state.status != "pending" or found.state.redeemed:
            return "answered"
        outcome: DeviceApproved | Rejected | None = None
        if approve:
            outcome = decide(DeviceApprovalRequest(device_grant=found.grant, user_id=user_id), tenant, now=now)
            if isinstance(outcome, Rejected):
                return outcome
            state = found.state.model_copy(update={"status": "approved", "grant": outcome.grant})
        else:
            state = found.state.model_copy(update={"status": "denied"})
        value = DeviceRecord(grant=found.grant, state=state).model_dump_json()
        expires = found.grant.issued_at + found.grant.expires_in + DEVICE_GRACE
        if store.swap(DEVICE, code, raw, value, expires=max(expires, now + 1), now=now):
            return outcome if outcome is not None else "denied"
    raise RuntimeError("the device code's record kept changing")
