"""The ``refresh_token`` grant: new tokens for a refresh token issued earlier (R66, R72, R73),
with Auth0's rotation, reuse detection, leeway and expiry.

The server gives the facts about the token's family (``TokenRequest.refresh_family``: which
generation is current, when the previous one stops being accepted, the last use, whether the
family is revoked); the decision carries the family's next state
(``Issued.refresh_family``) for the server to record atomically.
"""

from __future__ import annotations

from claimsengine.model import Client, Issued, RefreshFamily, RefreshGrant, Rejected, TokenRequest
from claimsengine.rules import ErrorCode, Rule
from claimsengine.steps import Trace, audience_still_exists, split_scope
from claimsengine.tokens import Draft, family_expiry, issue, stored_targets

__all__ = ["refresh_token"]


def _invalid(rule: Rule, detail: str, t: Trace, ref: str = "") -> Rejected:
    # Every unusable refresh token gets the same answer (R73): unknown, expired, rotated away,
    # reused or revoked; the trace says which.
    if t.behaviour.refresh_error == "legacy":
        return t.reject(rule, ErrorCode.ACCESS_DENIED, "Unknown or invalid refresh token", detail=detail, ref=ref)
    return t.reject(rule, ErrorCode.INVALID_GRANT, "Unknown or invalid refresh token.", detail=detail, ref=ref)


def _family_check(grant: RefreshGrant, family: RefreshFamily | None, client: Client, t: Trace) -> Rejected | bool:
    """Whether the family lets ``grant`` be exchanged: a rejection, else whether it is the
    previous token reused within the leeway (True) or the current one (False)."""
    ref = t.index.ref(client)
    if family is None:
        return _invalid(Rule.REFRESH_INVALID, "the token's family is unknown or was forgotten", t)
    if family.revoked:
        return _invalid(Rule.REFRESH_REVOKED, "the token's family was revoked", t)
    idle = client.refresh_settings.idle_lifetime
    if idle is not None and t.now >= family.last_used + idle:
        return _invalid(Rule.REFRESH_IDLE_EXPIRED, f"unused for {idle} s or more", t, ref)
    if grant.generation == family.current:
        return False
    if grant.generation == family.previous and t.now < family.previous_until:
        t.note(Rule.REFRESH_LEEWAY, f"the previous token, within the leeway (until {family.previous_until})", ref)
        return True
    # refresh.reuse_detected: a rotated-away token outside the leeway revokes the whole family.
    return _invalid(Rule.REFRESH_REUSED, "a rotated-away token was presented again: the family is revoked", t, ref)


def refresh_token(req: TokenRequest, client: Client, domain: str, t: Trace) -> Issued | Rejected:
    """Exchange a refresh token (present: the engine checked) for new tokens, narrowing scope (R72)."""
    grant = req.refresh_grant
    user = t.index.users.get(grant.user_id) if grant is not None else None
    if grant is None or grant.client_id != client.client_id or user is None or not audience_still_exists(grant.audience, t):
        # refresh.invalid (R73)
        return _invalid(Rule.REFRESH_INVALID, "unknown token, another client's, or its user or API is gone", t)
    if grant.expires_at is not None and t.now >= grant.expires_at:
        return _invalid(Rule.REFRESH_EXPIRED, "past the absolute lifetime fixed at issuance", t, t.index.ref(client))
    family = req.refresh_family
    leeway_reuse = False
    if grant.family is not None:
        checked = _family_check(grant, family, client, t)
        if isinstance(checked, Rejected):
            return checked
        leeway_reuse = checked
    scopes = grant.scope
    requested = split_scope(req.scope)
    if requested:
        beyond = [s for s in requested if s not in grant.scope]
        if beyond:
            return t.reject(
                Rule.SCOPE_REFRESH_EXCEEDS,
                ErrorCode.INVALID_SCOPE,
                "The requested scope exceeds the scope granted by the resource owner",
                detail=f"not in the original grant: {' '.join(beyond)}",
            )
        scopes = tuple(s for s in grant.scope if s in requested)
        t.note(Rule.SCOPE_REFRESH_NARROWED, " ".join(scopes))
    settings = client.refresh_settings
    ref = t.index.ref(client)
    rotated: RefreshGrant | None = None
    after: RefreshFamily | None = None
    if settings.rotating:
        rotated = grant
        if family is not None:
            # The presented token (or, on a reuse within the leeway, the one it was rotated to)
            # stops being current; only the token rotated away first stays reusable, until the
            # leeway that started then ends.
            previous, until = (family.previous, family.previous_until) if leeway_reuse else (grant.generation, t.now + settings.leeway)
            after = RefreshFamily(
                current=family.current + 1,
                previous=previous,
                previous_until=until,
                last_used=t.now,
                expires_at=family_expiry(client, grant.expires_at, t.now),
            )
        t.note(Rule.REFRESH_ROTATED, f"a new refresh token; the presented one is accepted again only within {settings.leeway} s", ref)
    else:
        if family is not None:
            after = family.model_copy(update={"last_used": t.now, "expires_at": family_expiry(client, grant.expires_at, t.now)})
        t.note(Rule.REFRESH_NOT_ROTATED, "non-rotating: the same refresh token stays valid", ref)
    api, org = stored_targets(grant, t)
    draft = Draft(
        client=client,
        domain=domain,
        scopes=scopes,
        api=api,
        user=user,
        org=org,
        gty="refresh_token",
        custom=grant.access_claims,
        id_claims=grant.id_claims,
        rotated=rotated,
        family=after,
        sid=grant.sid,
        id_token_auth_time=grant.id_token_auth_time,
    )
    return issue(draft, t)
