"""The ``refresh_token`` grant: new tokens for a refresh token issued earlier (R66, R72, R73)."""

from __future__ import annotations

from claimsengine.model import Client, Issued, Rejected, TokenRequest
from claimsengine.rules import ErrorCode, Rule
from claimsengine.steps import Trace, audience_still_exists, split_scope
from claimsengine.tokens import Draft, issue, stored_targets

__all__ = ["refresh_token"]


def refresh_token(req: TokenRequest, client: Client, domain: str, t: Trace) -> Issued | Rejected:
    """Exchange a refresh token (present: the engine checked) for new tokens, narrowing scope (R72)."""
    grant = req.refresh_grant
    user = t.index.users.get(grant.user_id) if grant is not None else None
    if grant is None or grant.client_id != client.client_id or user is None or not audience_still_exists(grant.audience, t):
        # refresh.invalid (R73)
        if t.behaviour.refresh_error == "legacy":
            return t.reject(Rule.REFRESH_INVALID, ErrorCode.ACCESS_DENIED, "Unknown or invalid refresh token")
        return t.reject(Rule.REFRESH_INVALID, ErrorCode.INVALID_GRANT, "Unknown or invalid refresh token.")
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
    )
    return issue(draft, t)
