"""The ``authorization_code`` grant: a code from ``/authorize`` exchanged for tokens, with
redirect_uri and PKCE checks (RFC 6749 section 4.1, RFC 7636)."""

from __future__ import annotations

import base64
import hashlib
import hmac

from claimsengine.model import AuthMethod, AuthorizationGrant, Client, Issued, Rejected, TokenRequest
from claimsengine.rules import ErrorCode, Rule
from claimsengine.steps import Trace, audience_still_exists, clean
from claimsengine.tokens import issue, stored_draft

__all__ = ["authorization_code"]


def _pkce_ok(grant: AuthorizationGrant, verifier: str) -> bool:
    if grant.code_challenge_method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    else:
        expected = verifier
    return hmac.compare_digest(expected.encode("utf-8", "surrogatepass"), (grant.code_challenge or "").encode("utf-8", "surrogatepass"))


def authorization_code(req: TokenRequest, client: Client, domain: str, t: Trace) -> Issued | Rejected:
    """Exchange a code (present: the engine checked the grant's required parameters) for tokens."""
    grant = req.code_grant
    invalid = "Invalid authorization code"
    if grant is None:
        return t.reject(Rule.CODE_INVALID, ErrorCode.INVALID_GRANT, invalid, detail="unknown, used or tampered code")
    if grant.client_id != client.client_id:
        return t.reject(Rule.CODE_INVALID, ErrorCode.INVALID_GRANT, invalid, detail="code was issued to another client")
    if t.now > grant.issued_at + t.behaviour.authorization_code_lifetime:
        return t.reject(Rule.CODE_INVALID, ErrorCode.INVALID_GRANT, invalid, detail="code has expired")
    if grant.redirect_uri is not None and clean(req.redirect_uri) != grant.redirect_uri:
        return t.reject(Rule.CODE_REDIRECT_MISMATCH, ErrorCode.INVALID_GRANT, "Invalid redirect_uri")
    verifier = clean(req.code_verifier)
    if grant.code_challenge is not None:
        if verifier is not None and t.behaviour.pkce_enforce_verifier_length and not 43 <= len(verifier) <= 128:
            # Issue 8, item 9: RFC 7636 section 4.1 wants 43 to 128 characters, plain or S256.
            text = "Failed to verify code verifier"
            return t.reject(Rule.CODE_PKCE_FAILED, ErrorCode.INVALID_GRANT, text, detail="the verifier is not 43 to 128 characters long")
        if verifier is None or not _pkce_ok(grant, verifier):
            return t.reject(Rule.CODE_PKCE_FAILED, ErrorCode.INVALID_GRANT, "Failed to verify code verifier")
    elif client.auth_method is AuthMethod.NONE or client.strict_third_party(t.behaviour):
        # Public clients, and strict third-party applications always (issue 8, item 7).
        return t.reject(Rule.CODE_PKCE_REQUIRED, ErrorCode.INVALID_REQUEST, "Missing required parameter: code_verifier")
    t.note(Rule.CODE_VERIFIED, "code, redirect_uri and PKCE check out")
    if grant.domain != domain:
        # Issue 8, item 4: iss follows the domain of /authorize, recorded with the code.
        if t.behaviour.code_exchange_cross_domain == "refuse":
            return t.reject(
                Rule.CODE_OTHER_DOMAIN_REFUSED, ErrorCode.INVALID_GRANT, invalid, detail=f"the code was issued through {grant.domain}"
            )
        if grant.domain not in t.index.domains:
            return t.reject(Rule.CODE_INVALID, ErrorCode.INVALID_GRANT, invalid, detail="the code's domain is no longer served")
        t.note(
            Rule.ISS_AUTHORIZE_DOMAIN,
            f"exchanged through {domain}; the login started at {grant.domain}",
            t.index.domain_refs.get(grant.domain, ""),
        )
    user = t.index.users.get(grant.user_id)
    if user is None:
        return t.reject(Rule.CODE_INVALID, ErrorCode.INVALID_GRANT, invalid, detail="the user no longer exists")
    if not audience_still_exists(grant.audience, t):
        return t.reject(Rule.CODE_INVALID, ErrorCode.INVALID_GRANT, invalid, detail="the API no longer exists")
    # The token is issued as through the domain the code's /authorize went through.
    return issue(stored_draft(grant, client, grant.domain, user, t), t)
