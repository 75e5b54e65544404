"""The device code grant (``urn:ietf:params:oauth:grant-type:device_code``, RFC 8628 section 3.4):
a device polls with the device code from ``POST /oauth/device/code`` until its user answers.

The device code is a sealed :class:`~claimsengine.model.DeviceGrant`; what happened since
(the user's answer, the last poll, whether ``expired_token`` was answered already, whether
tokens were issued) are facts the server gives in ``TokenRequest.device_state``.
"""

from __future__ import annotations

from claimsengine.model import Client, Issued, Rejected, TokenRequest
from claimsengine.rules import ErrorCode, Rule
from claimsengine.steps import Trace, audience_still_exists
from claimsengine.tokens import Draft, issue, stored_targets

__all__ = ["device_code"]

INVALID = "Invalid or expired device code."


def device_code(req: TokenRequest, client: Client, domain: str, t: Trace) -> Issued | Rejected:
    """Answer one poll for a device code (present: the engine checked)."""
    grant, state = req.device_grant, req.device_state
    if grant is None or grant.client_id != client.client_id or state is None:
        return t.reject(Rule.DEVICE_CODE_INVALID, ErrorCode.INVALID_GRANT, INVALID, detail="unknown code, another client's, or forgotten")
    if state.redeemed:
        return t.reject(Rule.DEVICE_CODE_INVALID, ErrorCode.INVALID_GRANT, INVALID, detail="tokens were issued for this code already")
    if t.now >= grant.issued_at + grant.expires_in:
        if state.expired_reported:
            # device.expired: expired_token is answered once; after that, invalid_grant.
            return t.reject(Rule.DEVICE_EXPIRED, ErrorCode.INVALID_GRANT, INVALID, detail="expired, and reported as such before")
        return t.reject(Rule.DEVICE_EXPIRED, ErrorCode.EXPIRED_TOKEN, "The device code has expired.", detail=f"{grant.expires_in} s passed")
    if state.last_poll is not None and t.now - state.last_poll < grant.interval:
        return t.reject(
            Rule.DEVICE_SLOW_DOWN,
            ErrorCode.SLOW_DOWN,
            f"You are polling faster than the specified interval of {grant.interval} seconds.",
        )
    if state.status == "denied":
        return t.reject(Rule.DEVICE_DENIED, ErrorCode.ACCESS_DENIED, "User cancelled the confirmation prompt.")
    approved = state.grant
    if state.status == "pending" or approved is None:
        return t.reject(Rule.DEVICE_PENDING, ErrorCode.AUTHORIZATION_PENDING, "User has yet to authorize device code.")
    user = t.index.users.get(approved.user_id)
    if user is None or approved.client_id != client.client_id or not audience_still_exists(approved.audience, t):
        return t.reject(Rule.DEVICE_CODE_INVALID, ErrorCode.INVALID_GRANT, INVALID, detail="the user, client or API is gone")
    t.note(Rule.DEVICE_REDEEMED, f"approved by {user.user_id}")
    api, org = stored_targets(approved, t)
    draft = Draft(
        client=client,
        domain=domain,
        scopes=approved.scope,
        api=api,
        user=user,
        org=org,
        custom=approved.access_claims,
        id_claims=approved.id_claims,
        refreshable=True,
        sid=approved.sid,
        id_token_auth_time=approved.id_token_auth_time,
    )
    return issue(draft, t)
