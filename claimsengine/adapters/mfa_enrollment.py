"""Authenticators added with ``POST /mfa/associate``, in the shared store.

A Deploy CLI export holds no enrolments, and the tenant's users are configuration: what a user
enrols at run time is a fact the server keeps, one record per user (the base32 TOTP secret or
the out-of-band channel, the recovery code, and whether an MFA grant has used it yet). The
core decides on it: the server reads the record before an MFA request (``mfa_enrollment`` of
the request), records what ``MfaAssociated.enrollment`` says after an association, and marks it
confirmed when a decision's trace says ``mfa.enrollment_confirmed``. Each write is a
compare-and-set from the record the decision was made on.

This module also draws the randomness an association needs: a TOTP secret (160 bits, base32,
as RFC 4226 recommends) and a recovery code (24 characters, like Auth0's).
"""

from __future__ import annotations

import base64
import json
import secrets
import string

from pydantic import SecretStr, ValidationError

from claimsengine.adapters.store import Store
from claimsengine.model import MfaEnrollment

__all__ = ["ENROLLMENT", "confirm", "load", "new_recovery_code", "new_secret", "record"]

ENROLLMENT = "mfa_enrollment"
# An enrolment is kept as long as the fake tenant lives (ten years).
FOREVER = 10 * 365 * 86400
_MAX_SWAPS = 16
_RECOVERY_LETTERS = string.ascii_uppercase + string.digits


def new_secret() -> str:
    """A fresh TOTP secret: 20 random bytes in base32 without padding (32 characters)."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii").rstrip("=")


def new_recovery_code() -> str:
    """A fresh recovery code: 24 upper-case letters and digits."""
    return "".join(secrets.choice(_RECOVERY_LETTERS) for _ in range(24))


def _dump(enrollment: MfaEnrollment) -> str:
    def shown(value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value is not None else None

    return json.dumps(
        {
            "totp_secret": shown(enrollment.totp_secret),
            "recovery_code": shown(enrollment.recovery_code),
            "oob_channel": enrollment.oob_channel,
            "confirmed": enrollment.confirmed,
        }
    )


def load(store: Store, user_id: str, now: int) -> tuple[str | None, MfaEnrollment | None]:
    """The stored record of ``user_id`` (as read) and the enrolment it holds (``None``: none)."""
    raw = store.load(ENROLLMENT, user_id, now=now)
    if raw is None:
        return None, None
    try:
        return raw, MfaEnrollment.model_validate(json.loads(raw))
    except (ValidationError, ValueError):
        return raw, None


def record(store: Store, user_id: str, expected: str | None, enrollment: MfaEnrollment, now: int) -> bool:
    """Store ``enrollment`` for ``user_id`` if the record is still ``expected``; True when it was."""
    return store.swap(ENROLLMENT, user_id, expected, _dump(enrollment), expires=now + FOREVER, now=now)


def confirm(store: Store, user_id: str, now: int) -> None:
    """Mark the user's enrolment confirmed (its first use by an MFA grant)."""
    for _ in range(_MAX_SWAPS):
        raw, found = load(store, user_id, now)
        if raw is None or found is None or found.confirmed:
            return
        if record(store, user_id, raw, found.model_copy(update={"confirmed": True}), now):
            return
    raise RuntimeError("the enrolment's record kept changing")
