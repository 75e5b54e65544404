"""Out-of-band MFA challenges in the shared store (facts-issue9 M3): what ``POST /mfa/challenge``
starts, what the user answers on their phone, and what the ``mfa-oob`` grant is decided on.

The core decides which challenge a login gets (``MfaChallenged``) and what an ``oob_code`` is
worth (``OobGrant`` + ``OobState``); this module only keeps the facts: a record per challenge
(its status, for SMS the binding code the message carried, and when the mfa-oob grant last
polled it), and the latest challenge of each user, so that a test can answer the push of a user whose SDK hid the ``oob_code``.
"""

from __future__ import annotations

import json
import secrets
from typing import Literal

from pydantic import SecretStr

from claimsengine.adapters.signing import Minter
from claimsengine.adapters.store import Store
from claimsengine.auth0 import MFA_API_LIFETIME
from claimsengine.model import OobGrant, OobState

__all__ = ["OOB_TYP", "answer", "polled", "read", "start"]

OOB_TYP = "claimsengine.oob"
_CHALLENGE = "oob"
_LATEST = "oob_user"
_MAX_SWAPS = 16


def _expires(grant: OobGrant) -> int:
    return grant.issued_at + MFA_API_LIFETIME + 60


def start(store: Store, minter: Minter, grant: OobGrant, now: int) -> tuple[str, OobGrant]:
    """Record a new pending challenge (an SMS one with a fresh six-digit binding code); the
    ``oob_code`` that names it and the grant it stands for."""
    challenge_id = secrets.token_urlsafe(16)
    binding = f"{secrets.randbelow(10**6):06d}" if grant.channel == "sms" else None
    record = json.dumps({"status": "pending", "binding_code": binding})
    store.swap(_CHALLENGE, challenge_id, None, record, expires=_expires(grant), now=now)
    for _ in range(_MAX_SWAPS):
        latest = store.load(_LATEST, grant.user_id, now=now)
        if store.swap(_LATEST, grant.user_id, latest, challenge_id, expires=_expires(grant), now=now):
            break
    with_id = grant.model_copy(update={"challenge_id": challenge_id})
    return minter.seal(OOB_TYP, with_id), with_id


def _state(raw: str | None) -> OobState | None:
    if raw is None:
        return None
    record = json.loads(raw)
    binding = record.get("binding_code")
    return OobState(
        status=record["status"], binding_code=SecretStr(binding) if binding is not None else None, last_poll=record.get("last_poll")
    )


def read(store: Store, minter: Minter, oob_code: str, now: int) -> tuple[OobGrant | None, OobState | None]:
    """The challenge behind ``oob_code`` and what the store knows of it (``None``: unknown)."""
    grant = minter.unseal(oob_code, OOB_TYP, OobGrant)
    if grant is None or grant.challenge_id is None:
        return None, None
    return grant, _state(store.load(_CHALLENGE, grant.challenge_id, now=now))


def polled(store: Store, grant: OobGrant, now: int) -> None:
    """Record that the mfa-oob grant polled ``grant``'s challenge at ``now`` (the fact its next
    poll's ``slow_down`` is decided on). Two polls at once both count; the later time stays."""
    if grant.challenge_id is None:
        return
    for _ in range(_MAX_SWAPS):
        raw = store.load(_CHALLENGE, grant.challenge_id, now=now)
        if raw is None:
            return
        record = json.loads(raw)
        if (record.get("last_poll") or 0) >= now:
            return
        record["last_poll"] = now
        if store.swap(_CHALLENGE, grant.challenge_id, raw, json.dumps(record), expires=_expires(grant), now=now):
            return
    raise RuntimeError("the challenge's record kept changing")


def answer(
    store: Store, minter: Minter, *, oob_code: str | None, user_id: str | None, action: Literal["approve", "deny", "read"], now: int
) -> dict[str, str] | Literal["unknown", "answered"]:
    """Answer a challenge as its user would on the phone: approve or deny a push, or read the
    SMS (its binding code). Named by ``oob_code``, else the user's latest challenge."""
    if oob_code is not None:
        grant = minter.unseal(oob_code, OOB_TYP, OobGrant)
        challenge_id = grant.challenge_id if grant is not None else None
    else:
        challenge_id = store.load(_LATEST, user_id, now=now) if user_id is not None else None
    for _ in range(_MAX_SWAPS):
        raw = store.load(_CHALLENGE, challenge_id, now=now) if challenge_id is not None else None
        state = _state(raw)
        if raw is None or state is None or challenge_id is None:
            return "unknown"
        shown: dict[str, str] = {"status": state.status}
        if state.binding_code is not None:
            shown["binding_code"] = state.binding_code.get_secret_value()
        if action == "read":
            return shown
        if state.status != "pending":
            return "answered"
        record = json.loads(raw)
        record["status"] = "approved" if action == "approve" else "denied"
        if store.swap(_CHALLENGE, challenge_id, raw, json.dumps(record), expires=now + MFA_API_LIFETIME, now=now):
            return {**shown, "status": record["status"]}
    raise RuntimeError("the challenge's record kept changing")
