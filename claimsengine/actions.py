"""What an Action sees and what it may do (catalogue R74 to R81).

Actions are plain Python callables ``action(event, api) -> None``, modelled on Auth0's
``credentials-exchange`` and ``post-login`` triggers. The ``api`` objects only *record*
what the Action asked for; the engine then applies the restricted-claim, namespace and
size rules. Actions must be deterministic for decisions to be.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pydantic import JsonValue

__all__ = [
    "DENY_STATUS",
    "ActionApi",
    "ClientInfo",
    "CredentialsExchangeEvent",
    "OrganizationInfo",
    "PostLoginEvent",
]

# R75: the codes api.access.deny accepts in credentials-exchange, with the Hooks statuses.
DENY_STATUS: MappingProxyType[str, int] = MappingProxyType({"invalid_scope": 400, "invalid_request": 400, "server_error": 500})


@dataclass(frozen=True)
class ClientInfo:
    """``event.client``."""

    client_id: str
    name: str
    metadata: MappingProxyType[str, str]


@dataclass(frozen=True)
class OrganizationInfo:
    """``event.organization`` (only when the request resolved to one)."""

    id: str
    name: str


@dataclass(frozen=True)
class CredentialsExchangeEvent:
    """``event`` of the credentials-exchange trigger (R74). Secrets are never included."""

    client: ClientInfo
    resource_server: str
    hostname: str
    custom_domain: str | None
    tenant: str
    organization: OrganizationInfo | None
    requested_scopes: tuple[str, ...]
    scopes: tuple[str, ...]
    # The decision's time (Unix seconds): what an Action's clock reads.
    now: int = 0


@dataclass(frozen=True)
class PostLoginEvent:
    """``event`` of the post-login trigger."""

    client: ClientInfo
    user_id: str
    user_profile: MappingProxyType[str, JsonValue]
    resource_server: str | None
    hostname: str
    organization: OrganizationInfo | None
    requested_scopes: tuple[str, ...]
    scopes: tuple[str, ...]
    # ``event.authorization.roles``: the user's roles, and in an organization its member roles.
    roles: tuple[str, ...] = ()
    tenant: str = ""
    now: int = 0


@dataclass
class _Claims:
    """``api.accessToken`` / ``api.idToken``: records custom claims in call order."""

    claims: dict[str, Any] = field(default_factory=dict)
    added_scopes: list[str] = field(default_factory=list)
    removed_scopes: list[str] = field(default_factory=list)

    def set_custom_claim(self, name: str, value: Any) -> None:
        """Set a custom claim; the engine may still drop it (R77 to R79)."""
        self.claims[name] = value

    def add_scope(self, scope: str) -> None:
        """Post-login only: add a scope to the access token."""
        self.added_scopes.append(scope)

    def remove_scope(self, scope: str) -> None:
        """Post-login only: remove a scope from the access token."""
        self.removed_scopes.append(scope)


@dataclass
class _Access:
    """``api.access``: records a denial."""

    denial: tuple[str, str] | None = None

    def deny(self, code_or_reason: str, reason: str | None = None) -> None:
        """Deny. Credentials-exchange: ``deny(code, reason)``; post-login: ``deny(reason)``."""
        if self.denial is None:
            self.denial = (code_or_reason, reason) if reason is not None else ("access_denied", code_or_reason)


@dataclass
class _Transaction:
    """``api.transaction``: the target-scope set of R81 (starts as the granted scopes)."""

    target_scopes: list[str]

    def add_target_scope(self, scope: str) -> None:
        """Add one scope to the target set."""
        if scope not in self.target_scopes:
            self.target_scopes.append(scope)

    def remove_target_scope(self, scope: str) -> None:
        """Remove one scope from the target set."""
        if scope in self.target_scopes:
            self.target_scopes.remove(scope)

    def set_target_scopes(self, scopes: list[str]) -> None:
        """Replace the target set."""
        self.target_scopes[:] = list(dict.fromkeys(scopes))

    def clear_target_scopes(self) -> None:
        """Empty the target set."""
        self.target_scopes.clear()


@dataclass
class ActionApi:
    """``api`` of both triggers. ``transaction`` is used by credentials-exchange only.

    ``cache`` is ``api.cache``: shared by the Actions of one trigger run, and empty at the
    start of each run (Auth0 never guarantees a cached item survives).
    """

    access: _Access
    access_token: _Claims
    id_token: _Claims
    transaction: _Transaction
    cache: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(cls, scopes: tuple[str, ...]) -> ActionApi:
        """A fresh recorder whose target scopes start as ``scopes``."""
        return cls(_Access(), _Claims(), _Claims(), _Transaction(list(scopes)))
