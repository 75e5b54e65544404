"""Decision tables: every class of request a tenant can receive, and what ``decide`` says.

This module makes no decision of its own. It enumerates request classes (application x
grant type x audience x scope class x domain x organization class x state), builds one
concrete request per class with the application's real credentials, asks
``claimsengine.decide`` at a fixed ``now``, and groups classes whose outcome does not depend
on a dimension into one row with ``any`` in that cell. The grants that present something
issued earlier (a password login's mfa_token, a device code, a refresh token) are built in
``table_flows``, which runs the earlier steps through ``decide`` too.

Rows are produced by generators, one application and grant type at a time, so a large
tenant is tabulated in memory bounded by the size of one such group.

Other jobs live next door: ``table_diff`` compares two tables, ``table_render`` prints
them, ``docgen`` writes the generated pages under ``docs/``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from operator import itemgetter
from typing import Any, TypeVar

from pydantic import SecretStr

from claimsengine.engine import ASSERTION_TYPE, decide
from claimsengine.grants import BY_WIRE, GrantType
from claimsengine.grants import GRANTS as DECLARED
from claimsengine.model import (
    AuthMethod,
    Authorized,
    AuthorizeRequest,
    Client,
    ClientAssertion,
    Issued,
    Rejected,
    SubjectType,
    Tenant,
    TokenRequest,
)
from claimsengine.rules import Rule
from claimsengine.steps import grant_scopes

from . import wire
from .parallel import ordered_map

V = TypeVar("V")

NOW = 1_700_000_000
"""The fixed clock every table is computed at, so output is deterministic."""

ANY = "any"
UNKNOWN_AUDIENCE = "https://unknown-api.invalid/"
UNKNOWN_ORGANIZATION = "org_unknown000000000"
UNDEFINED_SCOPE = "undefined:scope"
NO_AUDIENCE = "(none)"
PKCE_VERIFIER = "decision-table-verifier-0123456789-abcdefghijklmnop"

# The grant types the table covers: every declared grant a request can start from.
GRANTS = tuple(g.grant_type.value for g in DECLARED.values() if g.table is not None)
# "offline" asks for a refresh token and an ID token with the granted scopes: "openid offline_access ...".
SCOPE_CLASSES = ("none", "granted", "not granted", "openid", "offline")
ORG_CLASSES = ("none", "associated", "not associated", "unknown")
DIMENSIONS = ("client", "grant", "audience", "scope", "domain", "organization", "state")
# Dimensions merged inside a group (one application and grant type), in this order.
MERGE_ORDER = ("domain", "organization", "scope", "audience", "state")
# The state of what a request presents that was issued earlier (docs/cli.md): "-" for the
# grants that present nothing of the kind (client_credentials; the authorization code is
# always the fresh one its /authorize gave).
NO_STATE = "-"
STATES: Mapping[str, tuple[str, ...]] = {
    "password": ("valid", "wrong"),
    "http://auth0.com/oauth/grant-type/password-realm": ("valid", "wrong"),
    "http://auth0.com/oauth/grant-type/mfa-otp": ("valid", "wrong", "used"),
    "http://auth0.com/oauth/grant-type/mfa-recovery-code": ("valid", "wrong", "used"),
    "http://auth0.com/oauth/grant-type/mfa-oob": ("approved", "pending", "denied"),
    "urn:ietf:params:oauth:grant-type:device_code": ("pending", "approved", "denied", "slow_down", "expired"),
    "refresh_token": ("current", "reused at once", "reused after leeway", "revoked", "idle", "expired"),
}
DOMAIN_PATTERN = "{domain}"


@dataclass(frozen=True, order=True)
class RequestClass:
    """One class of request: a value (or ``any``) per dimension."""

    client: str
    grant: str
    audience: str
    scope: str
    domain: str
    organization: str
    state: str = NO_STATE

    def get(self, dim: str) -> str:
        value: str = getattr(self, dim)
        return value


@dataclass(frozen=True)
class Outcome:
    """What ``decide`` answered for a class: everything that tells two tokens (or errors) apart.

    The domain is abstracted out of ``iss``. ``None`` means "not applicable" (a rejection has
    no ``alg``, an issued token no ``error``).
    """

    endpoint: str
    kind: str
    format: str | None = None
    alg: str | None = None
    typ: str | None = None
    aud: str | tuple[str, ...] | None = None
    iss: str | None = None
    scope: str | None = None
    expires_in: int | None = None
    refresh_token: bool | None = None
    id_token: bool | None = None
    id_token_expires_in: int | None = None
    # Names of the token's claims beyond the registered ones every token has, so that a
    # change such as org_name appearing is a change of outcome too.
    claims: tuple[str, ...] = ()
    error: str | None = None
    status: int | None = None
    description: str | None = None
    rules: tuple[str, ...] = ()

    def summary(self) -> str:
        """A short one-line form, for diffs."""
        if self.kind == "issued":
            parts = [f"issued {self.format}"]
            if self.alg is not None:
                parts.append(f"{self.alg}/{self.typ}")
            parts.append(f"aud={aud_text(self.aud)}")
            if self.scope:
                parts.append(f"scope={self.scope!r}")
            parts.append(f"expires_in={self.expires_in}")
            if self.refresh_token:
                parts.append("+refresh_token")
            if self.id_token:
                parts.append(f"+id_token({self.id_token_expires_in}s)")
            if self.claims:
                parts.append(f"claims={','.join(self.claims)}")
            return " ".join(parts)
        if self.kind == "authorized":
            return f"authorized at {self.endpoint}"
        return f"{self.status} {self.error} at {self.endpoint}: {self.description!r}"


# Outcome fields compared by diff, with the rule-id prefixes that explain a change in each.
FIELD_RULES: dict[str, tuple[str, ...]] = {
    "endpoint": ("authorize.", "consent.", "code."),
    "kind": (),
    "format": ("format.",),
    "alg": ("signing.", "format."),
    "typ": ("claims.rfc9068", "format."),
    "aud": ("aud.", "audience."),
    "iss": ("iss.", "domain."),
    "scope": ("scope.", "response.scope", "action.target_scopes"),
    "expires_in": ("lifetime.",),
    "refresh_token": ("refresh.", "scope.offline_access"),
    "id_token": ("id_token.",),
    "id_token_expires_in": ("id_token.",),
    "claims": ("claims.", "action.claim", "org."),
    "error": (),
    "status": (),
    "description": (),
}


ClassShape = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[tuple[str, ...], ...]]
"""Domains, audiences, states and each audience's organization classes (``TableContext.class_shape``)."""

EarlyGroup = tuple[Mapping[str, Outcome], ClassShape]
"""A group refused early: the answer on each domain and the group's shape (``TableContext.early_group``)."""


@dataclass(frozen=True)
class Row:
    """A table row: a request class (cells may be ``any``) and its outcome."""

    request: RequestClass
    outcome: Outcome
    client_name: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON values: arrays are lists, what does not apply is ``None``."""
        out: dict[str, Any] = asdict(self.request)
        o = self.outcome
        out.update(
            client_name=self.client_name or None,
            endpoint=o.endpoint,
            kind=o.kind,
            format=o.format,
            alg=o.alg,
            typ=o.typ,
            aud=list(o.aud) if isinstance(o.aud, tuple) else o.aud,
            iss=o.iss,
            token_scope=o.scope,
            expires_in=o.expires_in,
            refresh_token=o.refresh_token,
            id_token=o.id_token,
            id_token_expires_in=o.id_token_expires_in,
            claims=list(o.claims),
            error=o.error,
            status=o.status,
            error_description=o.description,
            rules=list(o.rules),
        )
        return {column: out[column] for column in COLUMNS}


COLUMNS = (
    "client",
    "client_name",
    *DIMENSIONS[1:],
    "endpoint",
    "kind",
    "format",
    "alg",
    "typ",
    "aud",
    "iss",
    "token_scope",
    "expires_in",
    "refresh_token",
    "id_token",
    "id_token_expires_in",
    "claims",
    "error",
    "status",
    "error_description",
    "rules",
)
# Claims every issued token has; the table lists only the others.
_COMMON_CLAIMS = frozenset({"iss", "sub", "aud", "iat", "exp", "scope"})


# ---------------------------------------------------------------------------------------
# Concrete requests
# ---------------------------------------------------------------------------------------


@dataclass
class TableContext:
    """A tenant prepared for tabulation: credentials, the user for user flows, and the clock."""

    tenant: Tenant
    secrets: Mapping[str, str] = field(default_factory=dict)
    now: int = NOW

    def __post_init__(self) -> None:
        # The user who logs in: an organization member (organization rows need one), preferably
        # one with a database connection (the password grants log in through it), in file order.
        members = {m.user_id for o in self.tenant.organizations for m in o.members}
        ranked = sorted(self.tenant.users, key=lambda u: (u.user_id not in members, u.connection is None))
        self.user_id: str | None = ranked[0].user_id if ranked else None
        # What every class of one (application, grant type, audience) or (application, domain)
        # shares, computed once: the table asks for it once per class (issue 13, target 6).
        self._memo: dict[tuple[str, ...], Any] = {}
        # Evaluated groups that structurally identical applications are stamped from (``raw``).
        self._raw_templates: dict[tuple[str, str], list[Any]] = {}

    def _once(self, key: tuple[str, ...], compute: Callable[[], V]) -> V:
        if key not in self._memo:
            self._memo[key] = compute()
        value: V = self._memo[key]
        return value

    # --- the values of each dimension ---------------------------------------------------

    @property
    def domains(self) -> tuple[str, ...]:
        return (self.tenant.domain, *(d.domain for d in self.tenant.custom_domains))

    def audiences(self) -> tuple[str, ...]:
        t = self.tenant
        custom = tuple(a.identifier for a in t.apis if a.identifier != t.management_api_identifier)
        return (*custom, t.management_api_identifier, t.userinfo_audience, NO_AUDIENCE, UNKNOWN_AUDIENCE)

    def organizations(self, client_id: str, grant: str, audience: str) -> tuple[str, ...]:
        """The organization classes that exist for this application, grant and audience."""
        # "associated" and "not associated" exist only when the tenant has such an organization.
        missing = {
            "associated": self._associated(client_id, grant, audience) is None,
            "not associated": self._not_associated(client_id, grant, audience) is None,
        }
        return tuple(c for c in ORG_CLASSES if not missing.get(c, False))

    def organization_classes(self, client_id: str, grant: str, audience: str) -> tuple[str, ...]:
        """The organization classes of a group's audience: only ``none`` for the device code
        grant and for a refresh token a device login gave (the device code request names no
        organization); else ``organizations``."""
        kind = BY_WIRE[grant].table
        if kind == "refresh":
            from . import table_flows

            if table_flows.refresh_login_grant(self, client_id) == GrantType.DEVICE_CODE.value:
                return ("none",)
        if kind == "device":
            return ("none",)
        return self.organizations(client_id, grant, audience)

    def class_shape(self, client: Client, grant: str) -> ClassShape:
        """What the classes of one application and grant type are made of besides its client id:
        the domains, the audiences, the states and each audience's organization classes. Two
        groups of equal shape have the same classes but for the client id, in the same order."""
        audiences = self._once(("audiences",), self.audiences)
        orgs = tuple(self.organization_classes(client.client_id, grant, audience) for audience in audiences)
        return self.domains, audiences, STATES.get(grant, (NO_STATE,)), orgs

    def classes(self, client: Client, grant: str) -> Iterator[RequestClass]:
        """Every request class of one application and grant type, in table order."""
        domains, audiences, states, orgs_of = self.class_shape(client, grant)
        for audience, orgs in zip(audiences, orgs_of, strict=True):
            for scope in SCOPE_CLASSES:
                for domain in domains:
                    for org in orgs:
                        for state in states:
                            yield RequestClass(client.client_id, grant, audience, scope, domain, org, state)

    def all_classes(self) -> Iterator[RequestClass]:
        for client in self.tenant.clients:
            for grant in GRANTS:
                yield from self.classes(client, grant)

    # --- organization and scope classes made concrete ----------------------------------

    def _associated(self, client_id: str, grant: str, audience: str) -> str | None:
        return self._once(("associated", client_id, grant, audience), lambda: self._find_associated(client_id, grant, audience))

    def _not_associated(self, client_id: str, grant: str, audience: str) -> str | None:
        return self._once(("not associated", client_id, grant, audience), lambda: self._find_not_associated(client_id, grant, audience))

    def _find_associated(self, client_id: str, grant: str, audience: str) -> str | None:
        t = self.tenant
        if BY_WIRE[grant].subject is SubjectType.CLIENT:
            return next((o.id for o in t.organizations if (o.id, client_id, audience) in t.index.org_associations), None)
        return next((o.id for o in t.organizations if (o.id, self.user_id or "") in t.index.memberships), None)

    def _find_not_associated(self, client_id: str, grant: str, audience: str) -> str | None:
        t = self.tenant
        if BY_WIRE[grant].subject is SubjectType.CLIENT:
            return next((o.id for o in t.organizations if (o.id, client_id, audience) not in t.index.org_associations), None)
        return next((o.id for o in t.organizations if (o.id, self.user_id or "") not in t.index.memberships), None)

    def organization_value(self, cls: RequestClass) -> str | None:
        if cls.organization == "none":
            return None
        if cls.organization == "unknown":
            return UNKNOWN_ORGANIZATION
        if cls.organization == "associated":
            return self._associated(cls.client, cls.grant, cls.audience)
        return self._not_associated(cls.client, cls.grant, cls.audience)

    def granted_scopes(self, client_id: str, grant: str, audience: str) -> tuple[str, ...]:
        """What "all granted" means: the client grant's scopes, else every scope the API defines."""
        return self._once(("granted", client_id, grant, audience), lambda: self._granted_scopes(client_id, grant, audience))

    def _granted_scopes(self, client_id: str, grant: str, audience: str) -> tuple[str, ...]:
        t = self.tenant
        api = t.index.apis.get(audience)
        client = t.index.clients[client_id]
        if api is None:
            return ()
        cg = t.index.grant_for(client, audience, BY_WIRE[grant].subject)
        # The core's rule for what a client grant gives (R26, R27, R29, R33).
        return api.scopes if cg is None else grant_scopes(cg, api, t.behaviour)

    def scope_value(self, cls: RequestClass) -> str | None:
        if cls.scope == "none":
            return None
        if cls.scope == "openid":
            return "openid"
        granted = self.granted_scopes(cls.client, cls.grant, cls.audience)
        if cls.scope == "granted":
            return " ".join(granted) or None
        if cls.scope == "offline":
            return " ".join(("openid", "offline_access", *granted))
        return self._once(("not granted", cls.client, cls.grant, cls.audience), lambda: self._not_granted(granted, cls.audience))

    def _not_granted(self, granted: tuple[str, ...], audience: str) -> str:
        api = self.tenant.index.apis.get(audience)
        spare = [s for s in (api.scopes if api is not None else ()) if s not in granted]
        return spare[0] if spare else UNDEFINED_SCOPE

    # --- requests -------------------------------------------------------------------------

    def _credentials(self, client: Client, domain: str) -> tuple[Mapping[str, Any], str | None, ClientAssertion | None]:
        """Wire parameters, Authorization header and assertion that authenticate ``client``."""
        return self._once(("credentials", client.client_id, domain), lambda: self._make_credentials(client, domain))

    def presented_secret(self, client: Client) -> str | None:
        """The secret the table's requests present for ``client``: the loader's, else its first."""
        secret = self.secrets.get(client.client_id)
        if secret is None and client.client_secrets:
            secret = client.client_secrets[0].get_secret_value()
        return secret

    def _make_credentials(self, client: Client, domain: str) -> tuple[Mapping[str, Any], str | None, ClientAssertion | None]:
        method = client.auth_method
        secret = self.presented_secret(client)
        if method is AuthMethod.NONE:
            return {"client_id": client.client_id}, None, None
        if method is AuthMethod.CLIENT_SECRET_BASIC:
            return {}, wire_basic(client.client_id, secret or ""), None
        if method is AuthMethod.PRIVATE_KEY_JWT:
            key = client.public_keys[0] if client.public_keys else None
            assertion = ClientAssertion(
                alg=key.alg if key is not None else "RS256",
                kid=key.kid if key is not None else None,
                claims={
                    "iss": client.client_id,
                    "sub": client.client_id,
                    "aud": f"https://{domain}/",
                    "iat": self.now,
                    "exp": self.now + 60,
                    "jti": "decision-table",
                },
                size=700,
                signature_valid=True,
                key_alg=key.alg if key is not None else None,
            )
            params = {"client_id": client.client_id, "client_assertion_type": ASSERTION_TYPE}
            return params, None, assertion
        return {"client_id": client.client_id, "client_secret": secret or ""}, None, None

    def token_params(self, cls: RequestClass) -> tuple[dict[str, Any], str | None, ClientAssertion | None]:
        """The wire parameters a one-request grant (``table="token"``) of this class sends."""
        client = self.tenant.index.clients[cls.client]
        credentials, authorization, assertion = self._credentials(client, cls.domain)
        params = {"grant_type": cls.grant, **credentials}
        if cls.audience != NO_AUDIENCE:
            params["audience"] = cls.audience
        scope = self.scope_value(cls)
        if scope is not None:
            params["scope"] = scope
        org = self.organization_value(cls)
        if org is not None:
            params["organization"] = org
        return params, authorization, assertion

    def authorize_request(self, cls: RequestClass) -> AuthorizeRequest:
        """The ``/authorize`` request of an authorization_code class (the user consents)."""
        client = self.tenant.index.clients[cls.client]
        params: dict[str, Any] = {
            "response_type": "code",
            "client_id": client.client_id,
            "state": "table",
            "code_challenge": PKCE_CHALLENGE,
            "code_challenge_method": "S256",
        }
        if client.callbacks:
            params["redirect_uri"] = client.callbacks[0]
        if cls.audience != NO_AUDIENCE:
            params["audience"] = cls.audience
        scope = self.scope_value(cls)
        if scope is not None:
            params["scope"] = scope
        org = self.organization_value(cls)
        if org is not None:
            params["organization"] = org
        return wire.authorize_request(params, domain=cls.domain, user_id=self.user_id, consent=True)

    def exchange_request(self, cls: RequestClass, authorized: Authorized) -> TokenRequest:
        """The code exchange that follows a successful ``/authorize``."""
        client = self.tenant.index.clients[cls.client]
        credentials, authorization, assertion = self._credentials(client, cls.domain)
        params = {
            "grant_type": "authorization_code",
            **credentials,
            "code": "decision-table-code",
            "code_verifier": PKCE_VERIFIER,
            "redirect_uri": authorized.redirect_uri,
        }
        return wire.token_request(params, domain=cls.domain, authorization=authorization, assertion=assertion, code_grant=authorized.grant)

    def evaluate(self, cls: RequestClass) -> Outcome:
        """Run ``decide`` on the concrete request(s) of ``cls``."""
        kind = BY_WIRE[cls.grant].table
        if kind not in ("token", "authorize"):
            from . import table_flows

            return table_flows.evaluate(self, cls)
        if kind == "token":
            params, authorization, assertion = self.token_params(cls)
            request = wire.token_request(params, domain=cls.domain, authorization=authorization, assertion=assertion)
            return outcome_of(decide(request, self.tenant, now=self.now), cls.domain)
        first = decide(self.authorize_request(cls), self.tenant, now=self.now)
        if not isinstance(first, Authorized):
            return outcome_of(first, cls.domain, endpoint="/authorize")
        second = decide(self.exchange_request(cls, first), self.tenant, now=self.now)
        return outcome_of(second, cls.domain, before=tuple(r.rule.value for r in first.trace))

    def expand(self, request: RequestClass) -> list[RequestClass]:
        """The concrete classes a (possibly merged) row stands for."""
        out: list[RequestClass] = []
        for client in self.tenant.clients:
            if request.client not in (ANY, client.client_id):
                continue
            for grant in GRANTS:
                if request.grant not in (ANY, grant):
                    continue
                out.extend(c for c in self.classes(client, grant) if all(request.get(d) in (ANY, c.get(d)) for d in DIMENSIONS))
        return out

    def group_count(self) -> int:
        return len(self.tenant.clients) * len(GRANTS)

    def evaluate_group(self, client: Client, grant: str) -> dict[RequestClass, Outcome]:
        """Every class of one application and grant type, each evaluated by ``decide`` (once
        per domain for a grant refused before its own parameters are read)."""
        early = self.refused_early(client, grant)
        if early is not None:
            return {cls: early[cls.domain] for cls in self.classes(client, grant)}
        return {cls: self.evaluate(cls) for cls in self.classes(client, grant)}

    def raw(self, client: Client, grant: str) -> dict[RequestClass, Outcome]:
        """Every class of one application and grant type and its outcome: evaluated, or stamped
        from a structurally identical application's (``twins``), which is the same dict."""
        members = self.twins()[client.client_id]
        if len(members) == 1:
            return self.evaluate_group(client, grant)
        rep = self.tenant.index.clients[members[0]]
        key = (rep.client_id, grant)
        entry = self._raw_templates.get(key)
        if entry is None:
            template = self.evaluate_group(rep, grant)
            entry = self._raw_templates[key] = [template, self.witnessed(template, rep, grant, members[1]), len(members)]
        template, exact, left = entry
        # Forget a template once each member has asked for it (a table asks once per member).
        entry[2] = left - 1
        if left <= 1:
            del self._raw_templates[key]
        if not exact and client.client_id != rep.client_id:
            return self.evaluate_group(client, grant)
        return stamp_group(template, rep.client_id, client.client_id)

    def early_group(self, client: Client, grant: str) -> EarlyGroup | None:
        """A group refused before its grant's own parameters are read, in brief: the answer on
        each domain and the group's ``class_shape`` (every class of the group gets its domain's
        answer, so two equal briefs of one application are equal groups); ``None`` otherwise."""
        early = self.refused_early(client, grant)
        return None if early is None else (early, self.class_shape(client, grant))

    def early_witnessed(self, brief: EarlyGroup, rep_id: str, grant: str, witness_id: str) -> bool:
        """``witnessed`` for a group refused early (``brief``: its ``early_group``), from the
        briefs: true only when ``witnessed`` would be (the witness's group has the same shape
        and each domain's answer stamped), without enumerating the classes."""
        witness = self.early_group(self.tenant.index.clients[witness_id], grant)
        answers, shape = brief
        return witness == ({domain: stamp_outcome(o, rep_id, witness_id) for domain, o in answers.items()}, shape)

    def witnessed(self, template: Mapping[RequestClass, Outcome], rep: Client, grant: str, witness_id: str) -> bool:
        """Whether the group of ``witness_id``, evaluated, is ``template`` stamped with its id: the
        check that a representative's outcomes carry no text of its own beyond its client id."""
        witness = self.tenant.index.clients[witness_id]
        stamped = [(stamp_class(k, witness_id), stamp_outcome(v, rep.client_id, witness_id)) for k, v in template.items()]
        return stamped == list(self.evaluate_group(witness, grant).items())

    def twins(self) -> Mapping[str, tuple[str, ...]]:
        """Each application's structurally identical applications, itself included, in tenant
        order (the first is the one evaluated): see ``structural_keys``."""
        return self._once(("twins",), self._twins)

    def _twins(self) -> Mapping[str, tuple[str, ...]]:
        keys = structural_keys(self)
        by_key: dict[Any, list[str]] = {}
        for client in self.tenant.clients:
            by_key.setdefault(keys[client.client_id] if keys is not None else client.client_id, []).append(client.client_id)
        return {cid: tuple(members) for members in by_key.values() for cid in members}

    def refused_early(self, client: Client, grant: str) -> Mapping[str, Outcome] | None:
        """For a grant of ``table_flows``: the answer on each domain when the grant is refused
        before its own parameters are read (the same for every class of the domain); else ``None``."""
        if BY_WIRE[grant].table in ("token", "authorize"):
            return None
        from . import table_flows

        return table_flows.refused_early(self, client.client_id, grant)

    def whole_group(self, client: Client, grant: str) -> RequestClass:
        """The row that stands for every class of a group: ``any`` in each dimension with more than one value."""
        values: dict[str, set[str]] = {d: set() for d in DIMENSIONS[2:]}
        for audience in self._once(("audiences",), self.audiences):
            values["audience"].add(audience)
            orgs = self.organization_classes(client.client_id, grant, audience)
            values["organization"].update(orgs)
        values["scope"].update(SCOPE_CLASSES)
        values["domain"].update(self.domains)
        values["state"].update(STATES.get(grant, (NO_STATE,)))
        cells = [next(iter(v)) if len(v) == 1 else ANY for v in values.values()]
        return RequestClass(client.client_id, grant, *cells)

    def single_row(self, client: Client, grant: str) -> Row | None:
        """The group's one merged row when its grant is refused alike on every domain before the
        grant's own parameters are read (every class has that answer); else ``None``."""
        early = self.refused_early(client, grant)
        if early is None or len(set(early.values())) != 1:
            return None
        return Row(self.whole_group(client, grant), next(iter(early.values())), client.name)

    def groups(self) -> list[tuple[Client, str]]:
        """The table's groups, in order: (application, grant type)."""
        return [(client, grant) for client in self.tenant.clients for grant in GRANTS]

    def rows(self, *, merge: bool = True, on_group: Callable[[], None] | None = None, jobs: int = 1) -> Iterator[Row]:
        """The table, one group (application x grant type) at a time.

        Only the first of each set of structurally identical applications (``twins``) is
        evaluated, by up to ``jobs`` processes; the groups of the others are its rows with their
        client id stamped in (``twin_map``).
        """
        groups = [(client.client_id, grant) for client, grant in self.groups()]
        twins = self.twins()
        clients = self.tenant.index.clients

        def rep_of(client_id: str) -> str | None:
            members = twins[client_id]
            return members[0] if len(members) > 1 else None

        def evaluate(i: int) -> tuple[list[Row], bool, frozenset[Outcome]]:
            client_id, grant = groups[i]
            single = self.single_row(clients[client_id], grant) if merge else None
            if single is not None:
                # A group refused before the grant's own parameters are read: one row; the
                # witness is its twin's row, computed the same way.
                if rep_of(client_id) != client_id:
                    return [single], True, frozenset()
                witness = self.single_row(clients[twins[client_id][1]], grant)
                stamped = stamp_outcome(single.outcome, client_id, twins[client_id][1])
                return [single], witness is not None and witness.outcome == stamped, frozenset({single.outcome})
            raw = self.evaluate_group(clients[client_id], grant)
            rows = [Row(k, v, clients[client_id].name) for k, v in (merge_rows(raw) if merge else raw.items())]
            if rep_of(client_id) != client_id:
                return rows, True, frozenset()
            return rows, self.witnessed(raw, clients[client_id], grant, twins[client_id][1]), frozenset(raw.values())

        def stamp(rows: list[Row], old: str, new: str) -> list[Row]:
            name = clients[new].name
            return [Row(stamp_class(r.request, new), stamp_outcome(r.outcome, old, new), name) for r in rows]

        for group in twin_map(groups, rep_of, evaluate, stamp, jobs):
            yield from group
            if on_group is not None:
                on_group()

    def group_rows(self, client: Client, grant: str, *, merge: bool = True) -> list[Row]:
        """The rows of one application and grant type, evaluated."""
        single = self.single_row(client, grant) if merge else None
        if single is not None:
            return [single]
        raw = self.evaluate_group(client, grant)
        pairs = merge_rows(raw) if merge else list(raw.items())
        return [Row(k, v, client.name) for k, v in pairs]


# ---------------------------------------------------------------------------------------
# Structurally identical applications (issue 13, target 6)
# ---------------------------------------------------------------------------------------

_SELF = "\x00this client\x00"
"""Stands for an application's own client id in its structural key."""


def structural_keys(ctx: TableContext) -> dict[str, tuple[Any, ...]] | None:
    """Per client id, everything the table's requests of that application and their decisions
    read, with the client's own id abstracted; ``None`` when the tenant has Actions.

    Two applications with the same key get the same outcome for every class, but for their
    client id in the texts that name it. The key is derived from the data, not from a list of
    fields, so a new field or a new reference to clients is in it without anyone adding it:

    * the application's own record, every field but four: its ``client_id`` (the engine only
      looks it up, compares it, copies it into texts, and checks its length, which is in the
      key); its ``name`` (read only by Actions); its ``client_secrets`` (compared with the
      secret the table presents: which of them match is in the key); its ``callbacks`` (the
      table sends the first, and the engine checks membership: which entries equal the first
      is in the key);
    * every record anywhere else in the tenant that holds the client id (client grants,
      organizations' client grants, users' consents, ...), with its path and with the id
      abstracted, in tenant order.

    Actions are code that can read the client's id, name and metadata, so a tenant with
    Actions has no twins. ``TableContext.witnessed`` checks each set of twins once more.
    """
    tenant = ctx.tenant
    if tenant.credentials_exchange_actions or tenant.post_login_actions:
        return None
    ids = frozenset(c.client_id for c in tenant.clients)
    references: dict[str, list[tuple[tuple[Any, ...], str]]] = {cid: [] for cid in ids}
    rest = tenant.model_dump(mode="json", exclude={"clients", "credentials_exchange_actions", "post_login_actions"})
    _references(rest, (), ids, references)
    owns: dict[str, dict[str, Any]] = {}
    for i, client in enumerate(tenant.clients):
        record = client.model_dump(mode="json", exclude={"client_id"})
        _references(record, ("clients", i), ids - {client.client_id}, references)
        owns[client.client_id] = {k: v for k, v in record.items() if k not in ("name", "client_secrets", "callbacks")}
    keys: dict[str, tuple[Any, ...]] = {}
    for client in tenant.clients:
        cid = client.client_id
        presented = ctx.presented_secret(client)
        keys[cid] = (
            len(cid),
            _canonical(owns[cid], cid),
            presented is None,
            tuple(presented == s.get_secret_value() for s in client.client_secrets),
            tuple(c == client.callbacks[0] for c in client.callbacks),
            tuple(references[cid]),
        )
    return keys


def _canonical(value: Any, client_id: str) -> str:
    return json.dumps(_abstracted(value, client_id), sort_keys=True)


def _abstracted(value: Any, client_id: str) -> Any:
    if isinstance(value, str):
        return _SELF if value == client_id else value
    if isinstance(value, list):
        return [_abstracted(v, client_id) for v in value]
    if isinstance(value, dict):
        return {_abstracted(k, client_id): _abstracted(v, client_id) for k, v in value.items()}
    return value


def _ids_in(value: Any, ids: frozenset[str]) -> Iterator[str]:
    """The client ids a value holds itself (in lists too), not those of records inside it."""
    if isinstance(value, str):
        if value in ids:
            yield value
    elif isinstance(value, list):
        for item in value:
            yield from _ids_in(item, ids)


def _references(value: Any, path: tuple[Any, ...], ids: frozenset[str], out: dict[str, list[tuple[tuple[Any, ...], str]]]) -> None:
    """Add, per client id, each record (dict) under ``value`` that holds it: the record's path
    (without its own list position) and its abstracted content."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            _references(item, (*path, i), ids, out)
        return
    if not isinstance(value, dict):
        return
    held = [k for k in value if k in ids]
    for item in value.values():
        held.extend(_ids_in(item, ids))
    where = (*path[:-1], "*") if path and isinstance(path[-1], int) else path
    for cid in dict.fromkeys(held):
        out[cid].append((where, _canonical(value, cid)))
    for k, item in value.items():
        _references(item, (*path, k), ids, out)


G = TypeVar("G")


def twin_map(
    groups: Sequence[tuple[str, str]],
    rep_of: Callable[[str], str | None],
    evaluate: Callable[[int], tuple[G, bool, frozenset[Outcome]]],
    stamp: Callable[[G, str, str], G],
    jobs: int,
) -> Iterator[G]:
    """The results of ``groups`` (application, grant type) in order, computed once per set of twins.

    ``rep_of`` names the twin evaluated for an application (``None``: it has no twins). The
    groups of applications with no twins and of each set's first member are evaluated, by up
    to ``jobs`` processes: ``evaluate(i)`` gives the result, whether the set's witness agreed
    (``TableContext.witnessed``) and the outcomes the group holds. The other members get
    ``stamp(result, rep, client_id)``, when the witness agreed and stamping keeps distinct
    outcomes distinct (so stamping cannot merge rows that the member's own table keeps
    apart); else they are evaluated here.
    """
    left = Counter((rep, grant) for client_id, grant in groups if (rep := rep_of(client_id)) not in (None, client_id))
    evaluated = [i for i, (client_id, _) in enumerate(groups) if rep_of(client_id) in (None, client_id)]
    results = ordered_map(lambda j: evaluate(evaluated[j]), len(evaluated), jobs)
    kept: dict[tuple[str, str], tuple[G, bool, frozenset[Outcome]]] = {}
    for i, (client_id, grant) in enumerate(groups):
        rep = rep_of(client_id)
        if rep is None or rep == client_id:
            result = next(results)
            if rep is not None and left[(rep, grant)]:
                kept[(rep, grant)] = result
            yield result[0]
            continue
        template, exact, outcomes = kept[(rep, grant)]
        left[(rep, grant)] -= 1
        if not left[(rep, grant)]:
            del kept[(rep, grant)]
        if exact and len({stamp_outcome(o, rep, client_id) for o in outcomes}) == len(outcomes):
            yield stamp(template, rep, client_id)
        else:
            yield evaluate(i)[0]


def stamp_group(group: Mapping[RequestClass, Outcome], old: str, new: str) -> dict[RequestClass, Outcome]:
    """The group of application ``old`` for its twin ``new``."""
    if old == new:
        return dict(group)
    return {stamp_class(k, new): stamp_outcome(v, old, new) for k, v in group.items()}


def stamp_class(cls: RequestClass, client_id: str) -> RequestClass:
    """``cls`` for another application."""
    return RequestClass(client_id, cls.grant, cls.audience, cls.scope, cls.domain, cls.organization, cls.state)


def stamp_outcome(outcome: Outcome, old: str, new: str) -> Outcome:
    """``outcome`` for the twin ``new`` of ``old``: its client id in the error description."""
    if outcome.description is None or old not in outcome.description:
        return outcome
    return replace(outcome, description=outcome.description.replace(old, new))


def wire_basic(client_id: str, secret: str) -> str:
    import base64
    from urllib.parse import quote_plus

    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def pkce_challenge(verifier: str) -> str:
    import base64
    import hashlib

    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


PKCE_CHALLENGE = pkce_challenge(PKCE_VERIFIER)


def aud_text(audience: str | tuple[str, ...] | None) -> str:
    if audience is None:
        return ""
    if isinstance(audience, tuple):
        return "[" + ", ".join(audience) + "]"
    return audience


def _claims_column(decision: Issued) -> tuple[str, ...]:
    """The token's non-registered claim names; a claim an Action set also shows its value, so
    that changing an Action's code changes the outcome."""
    by_action = {
        r.detail.split(": ", 1)[1] for r in decision.trace if r.rule is Rule.ACTION_CLAIM_SET and r.detail.startswith("access token: ")
    }
    return tuple(
        f"{name}={json.dumps(value, sort_keys=True)}" if repr(name) in by_action else name
        for name, value in decision.claims.items()
        if name not in _COMMON_CLAIMS
    )


def outcome_of(
    decision: Issued | Rejected | Authorized, domain: str, *, endpoint: str = "/oauth/token", before: tuple[str, ...] = ()
) -> Outcome:
    """The table's view of a decision; ``iss`` shows the request domain as ``{domain}``."""
    rules = (*before, *(r.rule.value for r in decision.trace))
    if isinstance(decision, Issued):
        iss = decision.issuer.replace(f"https://{domain}/", f"https://{DOMAIN_PATTERN}/") if domain else decision.issuer
        id_token = decision.id_token
        id_lifetime = None
        if id_token is not None and isinstance(id_token.get("exp"), int) and isinstance(id_token.get("iat"), int):
            id_lifetime = id_token["exp"] - id_token["iat"]
        return Outcome(
            endpoint=endpoint,
            kind="issued",
            format=decision.format.value,
            alg=decision.header.alg.value if decision.header is not None else None,
            typ=decision.header.typ if decision.header is not None else None,
            aud=decision.audience,
            iss=iss,
            scope=decision.scope,
            expires_in=decision.expires_in,
            refresh_token=decision.refresh is not None,
            id_token=id_token is not None,
            id_token_expires_in=id_lifetime,
            claims=_claims_column(decision),
            rules=rules,
        )
    if isinstance(decision, Rejected):
        return Outcome(
            endpoint=endpoint,
            kind="rejected",
            error=decision.error.value,
            status=decision.status,
            description=decision.error_description,
            rules=rules,
        )
    return Outcome(endpoint=endpoint, kind="authorized", rules=rules)


# ---------------------------------------------------------------------------------------
# Merging
# ---------------------------------------------------------------------------------------


def merge_rows(raw: Mapping[RequestClass, V], order: Sequence[str] = MERGE_ORDER) -> list[tuple[RequestClass, V]]:
    """Merge classes whose value does not depend on a dimension into ``any`` cells.

    A row with ``any`` in a set of dimensions stands for exactly the enumerated classes
    that match its other cells, and all of them have the row's value. Dimensions are
    tried in ``order``; a group of rows is merged only when it covers every class that
    matches, so ``any`` never hides a class with another value.

    Rows are plain tuples of cells here, and each row carries how many classes it covers,
    so a merge costs one pass over the rows per dimension.
    """
    keys = [(k.client, k.grant, k.audience, k.scope, k.domain, k.organization, k.state) for k in raw]
    width = len(DIMENSIONS)
    # Per set of ``any`` dimensions: how many enumerated classes match each projection.
    counts: dict[tuple[int, ...], Counter[tuple[str, ...]]] = {}

    def matching(anys: tuple[int, ...], cells: tuple[str, ...]) -> int:
        # Client and grant are never ``any``: at least those two cells are kept.
        keep = itemgetter(*(i for i in range(width) if i not in anys))
        if anys not in counts:
            counts[anys] = Counter(map(keep, keys))
        return counts[anys][keep(cells)]

    # Each row: (cells, value, first position, classes covered).
    rows: list[tuple[tuple[str, ...], V, int, int]] = [(k, v, i, 1) for i, (k, v) in enumerate(zip(keys, raw.values(), strict=True))]
    for dim in order:
        d = DIMENSIONS.index(dim)
        partitions: dict[tuple[str, ...], list[tuple[tuple[str, ...], V, int, int]]] = {}
        for row in rows:
            partitions.setdefault(row[0][:d] + row[0][d + 1 :], []).append(row)
        merged: list[tuple[tuple[str, ...], V, int, int]] = []
        for members in partitions.values():
            cells, value = members[0][0], members[0][1]
            if len(members) > 1 and all(m[1] == value for m in members):
                anys = tuple(i for i in range(width) if i == d or cells[i] == ANY)
                covered = sum(m[3] for m in members)
                if covered == matching(anys, cells):
                    merged.append(((*cells[:d], ANY, *cells[d + 1 :]), value, min(m[2] for m in members), covered))
                    continue
            merged.extend(members)
        rows = merged
    rows.sort(key=lambda r: r[2])
    return [(RequestClass(*cells), v) for cells, v, _, _ in rows]


def secrets_of(credentials: Iterable[Any]) -> dict[str, str]:
    """client_id to secret, from the loader's effective credentials."""
    out: dict[str, str] = {}
    for cred in credentials:
        secret = getattr(cred, "client_secret", None)
        client_id = getattr(cred, "client_id", None)
        if isinstance(client_id, str) and secret is not None:
            out.setdefault(client_id, secret.get_secret_value() if isinstance(secret, SecretStr) else str(secret))
    return out
