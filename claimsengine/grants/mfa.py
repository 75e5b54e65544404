"""The MFA grants that complete an ``mfa_required`` answer of the password grants:
``http://auth0.com/oauth/grant-type/mfa-otp`` (an authenticator app's one-time password) and
``http://auth0.com/oauth/grant-type/mfa-recovery-code`` (the user's recovery code).

The adapter unseals the ``mfa_token`` into the :class:`~claimsengine.model.MfaGrant` it
stands for (``None`` when it is not one of its tokens) and says whether the code was used
before; the core checks the grant and the code. The one-time password is computed from the
user's TOTP secret and the decision's ``now`` (RFC 6238: HMAC-SHA1, 30-second steps, six
digits, one step of drift either way), so tests drive it with the injected clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable

from claimsengine.auth0 import MFA_API_LIFETIME
from claimsengine.model import Client, Issued, MfaGrant, Rejected, TokenRequest, User
from claimsengine.rules import ErrorCode, Rule
from claimsengine.steps import Trace, mfa_login, parameter
from claimsengine.tokens import issue, stored_draft

__all__ = ["mfa_oob", "mfa_otp", "mfa_recovery_code"]

# RFC 6238 parameters of authenticator apps (Google Authenticator, Guardian).
TOTP_STEP = 30
TOTP_DIGITS = 6
TOTP_DRIFT_STEPS = 1


def totp(secret: str, now: int) -> str | None:
    """The RFC 6238 one-time password for base32 ``secret`` at Unix time ``now`` (None: not
    base32, or a time outside the 64-bit step counter)."""
    compact = secret.replace(" ", "").upper()
    try:
        key = base64.b32decode(compact + "=" * (-len(compact) % 8))
    except ValueError:  # binascii.Error is a ValueError
        return None
    counter = now // TOTP_STEP
    if not 0 <= counter < 2**64:
        return None
    digest = hmac.new(key, counter.to_bytes(8, "big"), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = int.from_bytes(digest[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(number % 10**TOTP_DIGITS).zfill(TOTP_DIGITS)


def _complete(
    req: TokenRequest,
    client: Client,
    domain: str,
    t: Trace,
    factor: str,
    verify: Callable[[User], bool],
    refused: Callable[[User, bool], Rejected],
) -> Issued | Rejected:
    """Check the mfa_token, then the second factor (``verify``; ``refused`` answers a failure,
    told whether the code was right but used before), then issue what the login withheld."""
    found = mfa_login(req, client, t)
    if isinstance(found, Rejected):
        return found
    grant, user = found
    matches = verify(user)
    if not matches or req.mfa_code_reused:
        return refused(user, matches)
    return _verified(grant, user, client, domain, factor, t)


def _verified(grant: MfaGrant, user: User, client: Client, domain: str, factor: str, t: Trace) -> Issued | Rejected:
    """The second factor checked out: issue what the login withheld. An authenticator added
    with ``POST /mfa/associate`` is confirmed by its first use (the server records it)."""
    t.note(Rule.MFA_VERIFIED, factor, t.index.ref(user))
    if user.mfa is not None and not user.mfa.confirmed:
        t.note(Rule.MFA_ENROLLMENT_CONFIRMED, "the authenticator added with /mfa/associate is now active", t.index.ref(user))
    return issue(stored_draft(grant, client, domain, user, t, gty="password"), t)


def mfa_otp(req: TokenRequest, client: Client, domain: str, t: Trace) -> Issued | Rejected:
    """Complete a password login with the one-time password of the user's authenticator app."""
    given = (parameter(req, "otp") or "").strip().encode("utf-8", "surrogatepass")

    def verify(user: User) -> bool:
        secret = user.mfa.totp_secret if user.mfa is not None else None
        if secret is None:
            return False
        expected = [totp(secret.get_secret_value(), t.now + d * TOTP_STEP) for d in range(-TOTP_DRIFT_STEPS, TOTP_DRIFT_STEPS + 1)]
        return any(e is not None and hmac.compare_digest(given, e.encode()) for e in expected)

    def refused(user: User, used: bool) -> Rejected:
        # mfa.otp_invalid (M2): a wrong, stale or already used code, or no authenticator enrolled.
        detail = "the code was used before" if used else "the code does not match the enrolled authenticator"
        return t.reject(Rule.MFA_OTP_INVALID, ErrorCode.INVALID_GRANT, "Invalid otp_code.", detail=detail, ref=t.index.ref(user))

    return _complete(req, client, domain, t, "one-time password", verify, refused)


def mfa_recovery_code(req: TokenRequest, client: Client, domain: str, t: Trace) -> Issued | Rejected:
    """Complete a password login with the user's recovery code (single use)."""
    given = (parameter(req, "recovery_code") or "").strip().encode("utf-8", "surrogatepass")

    def verify(user: User) -> bool:
        stored = user.mfa.recovery_code if user.mfa is not None else None
        return stored is not None and hmac.compare_digest(given, stored.get_secret_value().encode("utf-8", "surrogatepass"))

    def refused(user: User, used: bool) -> Rejected:
        # mfa.recovery_code_invalid (M4)
        detail = "the recovery code was used before" if used else "not the user's recovery code"
        return t.reject(Rule.MFA_RECOVERY_CODE_INVALID, ErrorCode.INVALID_GRANT, "MFA Authorization rejected.", detail=detail, status=401)

    return _complete(req, client, domain, t, "recovery code", verify, refused)


# mfa-oob (M3): Auth0's answers while a push waits for the user, and once the user declined.
OOB_PENDING_TEXT = "Authorization pending: please repeat the request in a few seconds."
OOB_REJECTED_TEXT = "MFA Authorization rejected."


def mfa_oob(req: TokenRequest, client: Client, domain: str, t: Trace) -> Issued | Rejected:
    """Complete a password login with an out-of-band challenge (M3): a push the user approved,
    or the binding code an SMS carried; ``authorization_pending`` while a push waits, and
    ``slow_down`` for a push polled again sooner than ``behaviour.mfa_oob_interval``."""
    found = mfa_login(req, client, t)
    if isinstance(found, Rejected):
        return found
    grant, user = found
    oob, state = req.oob_grant, req.oob_state
    invalid = "Invalid oob_code."
    if oob is None or state is None or oob.client_id != client.client_id or oob.user_id != grant.user_id:
        return t.reject(
            Rule.MFA_OOB_INVALID, ErrorCode.INVALID_GRANT, invalid, detail="not a challenge of this login", ref=t.index.ref(user)
        )
    if t.now >= oob.issued_at + MFA_API_LIFETIME or req.mfa_code_reused:
        detail = "the challenge was used before" if req.mfa_code_reused else "the challenge has expired"
        return t.reject(Rule.MFA_OOB_INVALID, ErrorCode.INVALID_GRANT, invalid, detail=detail, ref=t.index.ref(user))
    if oob.channel == "sms":
        given = (parameter(req, "binding_code") or "").strip().encode("utf-8", "surrogatepass")
        expected = state.binding_code.get_secret_value().encode() if state.binding_code is not None else None
        if expected is None or not hmac.compare_digest(given, expected):
            return t.reject(Rule.MFA_BINDING_CODE_INVALID, ErrorCode.INVALID_GRANT, "Invalid binding_code.", ref=t.index.ref(user))
    elif state.last_poll is not None and t.now - state.last_poll < (interval := t.behaviour.mfa_oob_interval):
        # mfa.oob_slow_down (M3): polled again sooner than the interval, as the device flow answers.
        text = f"You are polling faster than the specified interval of {interval} seconds."
        return t.reject(Rule.MFA_OOB_SLOW_DOWN, ErrorCode.SLOW_DOWN, text, detail=f"{t.now - state.last_poll} s after the previous poll")
    elif state.status == "denied":
        return t.reject(Rule.MFA_OOB_REJECTED, ErrorCode.INVALID_GRANT, OOB_REJECTED_TEXT, ref=t.index.ref(user))
    elif state.status == "pending":
        return t.reject(Rule.MFA_OOB_PENDING, ErrorCode.AUTHORIZATION_PENDING, OOB_PENDING_TEXT, ref=t.index.ref(user))
    return _verified(grant, user, client, domain, f"out-of-band ({oob.channel})", t)
