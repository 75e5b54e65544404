"""Actions that golden cases in ``specs/cases/`` refer to by name.

A case lists function names under ``"actions"``; ``tests/test_specs.py`` looks them up
here. Each is a small, deterministic Action with one purpose, so a case shows one rule.
Credentials-exchange Actions receive a ``CredentialsExchangeEvent``, post-login Actions a
``PostLoginEvent``; both receive the recording ``ActionApi``.
"""

from __future__ import annotations

from claimsengine import ActionApi, CredentialsExchangeEvent, PostLoginEvent

Event = CredentialsExchangeEvent | PostLoginEvent


# --- credentials-exchange -------------------------------------------------------------------


def deny_with_invalid_scope(event: Event, api: ActionApi) -> None:
    """Deny with a documented credentials-exchange code (R75)."""
    api.access.deny("invalid_scope", "Not authorized for this scope.")


def deny_with_unknown_code(event: Event, api: ActionApi) -> None:
    """Deny with a code credentials-exchange does not accept; it becomes server_error."""
    api.access.deny("forbidden", "Nobody gets in today.")


def deny_with_empty_reason(event: Event, api: ActionApi) -> None:
    """Deny with a documented code and an empty reason (specs/choices.md, question 14)."""
    api.access.deny("invalid_request", "")


def add_namespaced_claim(event: Event, api: ActionApi) -> None:
    """Add a namespaced claim from the client's metadata (R76)."""
    api.access_token.set_custom_claim("https://northwind.com/team", event.client.metadata.get("team", "none"))


def add_plain_claim(event: Event, api: ActionApi) -> None:
    """Add a non-namespaced claim: kept on custom APIs, dropped on Auth0 APIs (R78)."""
    api.access_token.set_custom_claim("tier", "gold")


def set_restricted_claim(event: Event, api: ActionApi) -> None:
    """Try to overwrite restricted claims (R77); both are ignored."""
    api.access_token.set_custom_claim("sub", "someone-else")
    api.access_token.set_custom_claim("permissions", ["admin:everything"])


def set_forbidden_namespace_claim(event: Event, api: ActionApi) -> None:
    """Use an Auth0-owned namespace (R79); the claim is dropped."""
    api.access_token.set_custom_claim("https://auth0.com/role", "admin")


def set_forbidden_http_namespace_claim(event: Event, api: ActionApi) -> None:
    """Use an Auth0-owned namespace over http (R79): forbidden whatever the scheme."""
    api.access_token.set_custom_claim("http://auth0.com/role", "admin")


def set_email_claim(event: Event, api: ActionApi) -> None:
    """Set an OIDC profile claim; without the email scope it is dropped (R71)."""
    api.access_token.set_custom_claim("email", "robot@northwind.com")


def add_huge_claim(event: Event, api: ActionApi) -> None:
    """Add a claim over the 100 KB custom-claims limit (R80)."""
    api.access_token.set_custom_claim("https://northwind.com/blob", "x" * 110_000)


def raise_error(event: Event, api: ActionApi) -> None:
    """An Action with a bug: it raises."""
    raise RuntimeError("spec action failed on purpose")


def narrow_target_scopes(event: Event, api: ActionApi) -> None:
    """Keep read:orders and ask for delete:orders, which the grant lacks (R81)."""
    api.transaction.set_target_scopes(["read:orders", "delete:orders"])


def clear_target_scopes(event: Event, api: ActionApi) -> None:
    """Remove every scope from the token (R81)."""
    api.transaction.clear_target_scopes()


def echo_event(event: Event, api: ActionApi) -> None:
    """Copy what the event says into a namespaced claim, so a case shows every field: the
    credentials-exchange event (R74) or the post-login one (its user, roles and resource server)."""
    organization = {"id": event.organization.id, "name": event.organization.name} if event.organization else None
    seen: dict[str, object] = {
        "client": {"client_id": event.client.client_id, "name": event.client.name},
        "resource_server": event.resource_server,
        "hostname": event.hostname,
        "tenant": event.tenant,
        "organization": organization,
        "requested_scopes": list(event.requested_scopes),
        "scopes": list(event.scopes),
        "now": event.now,
    }
    if isinstance(event, CredentialsExchangeEvent):
        seen["custom_domain"] = event.custom_domain
    else:
        seen.update(user_id=event.user_id, email=event.user_profile.get("email"), roles=list(event.roles))
    api.access_token.set_custom_claim("https://northwind.com/event", seen)


# --- post-login -------------------------------------------------------------------------------


def post_login_deny(event: Event, api: ActionApi) -> None:
    """Deny the login with a reason."""
    api.access.deny("Logins from this network are blocked.")


def post_login_add_claims(event: Event, api: ActionApi) -> None:
    """Add claims to both tokens; the email claim needs the email scope (R71)."""
    api.access_token.set_custom_claim("https://northwind.com/region", "emea")
    api.access_token.set_custom_claim("email", "shadow@northwind.com")
    api.id_token.set_custom_claim("https://northwind.com/locale", "en-GB")


def post_login_claims_for_both_tokens(event: Event, api: ActionApi) -> None:
    """Claims a post-login Action sets on a custom API's tokens: a plain and a urn claim are kept,
    urn:auth0 is Auth0's (R79), email needs the email scope (R71), and the ID token keeps a plain claim."""
    api.access_token.set_custom_claim("tier", "gold")
    api.access_token.set_custom_claim("urn:northwind:desk", "7")
    api.access_token.set_custom_claim("urn:auth0:role", "admin")
    api.id_token.set_custom_claim("tier", "gold")
    api.id_token.set_custom_claim("email", "shadow@northwind.com")


def post_login_remove_write(event: Event, api: ActionApi) -> None:
    """Remove write:orders from the access token's scopes."""
    api.access_token.remove_scope("write:orders")


def post_login_add_admin_scope(event: Event, api: ActionApi) -> None:
    """Try to add an admin Management API scope to a user token (Auth0 ignores it there)."""
    api.access_token.add_scope("read:users")
