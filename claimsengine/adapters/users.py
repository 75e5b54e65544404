"""Users for the password grants: Auth0's bulk user import/export JSON, a companion file for
what that format does not carry, and the bcrypt check of a presented password.

The users file is exactly what Auth0's bulk user import takes: a JSON array of users with
``email``, ``email_verified``, ``user_id``, ``username``, ``password_hash`` (bcrypt),
``app_metadata``, ``user_metadata``, ``blocked``, ``name``, ``given_name``, ``family_name``,
``nickname``, ``picture`` (an export job's JSON lines, one user per line, are read too). A
``user_id`` without a provider prefix gets ``auth0|``, as Auth0 names database users.

The companion file (``--user-assignments``) is a JSON object, every key optional::

    {
      "connection": "Username-Password-Authentication",
      "default_directory": "Username-Password-Authentication",
      "mfa_policy": "all-applications",
      "roles": {"auth0|alice": ["order-viewer"]},
      "organizations": {"org_acme0000000001": [{"user_id": "auth0|alice", "roles": ["order-admin"]}]},
      "mfa": {"auth0|alice": {"totp_secret": "JBSWY3DPEHPK3PXP", "recovery_code": "..."}}
    }

``connection`` is the database connection the users were imported into (the import job's
``connection_id``); ``default_directory`` and ``mfa_policy`` set the tenant settings of those
names (for exports that lack them); ``organizations`` is keyed by organization id or name. Every problem of
both files is reported at once, with its path, as a :class:`~claimsengine.adapters.loader.ConfigError`.

Passwords are never stored or logged: the core sees only which users a presented password
matched (``TokenRequest.password_valid_for``), and hashes are ``SecretStr`` values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from claimsengine.adapters.loader import ConfigError, Problem
from claimsengine.model import CrossReferenceError, Tenant, User

__all__ = ["DEFAULT_CONNECTION", "PROFILE_FIELDS", "matching_users", "password_matches", "with_users"]

DEFAULT_CONNECTION = "Username-Password-Authentication"
# Fields of the import format that become profile claims (released by the OIDC scopes, R71).
PROFILE_FIELDS = ("email", "email_verified", "name", "given_name", "family_name", "nickname", "picture", "username")
# Fields of the import format that are read into the user otherwise, and those known but unused.
_READ = frozenset({*PROFILE_FIELDS, "user_id", "password_hash", "app_metadata", "user_metadata", "blocked"})
_KNOWN = frozenset({"custom_password_hash", "mfa_factors", "identities", "created_at", "updated_at", "last_login", "logins_count"})
_COMPANION_KEYS = frozenset({"connection", "default_directory", "mfa_policy", "roles", "organizations", "mfa"})
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


def _read_json(path: Path, problems: list[Problem]) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problems.append(Problem(path.name, "", f"cannot read: {exc.strerror or exc}"))
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    # An export job writes JSON lines: one user object per line.
    rows: list[Any] = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                problems.append(Problem(path.name, "", f"not JSON (nor JSON lines): {exc.msg}", line=number))
                return None
    return rows


def _user(entry: Mapping[str, Any], where: str, file: str, connection: str, problems: list[Problem]) -> dict[str, Any] | None:
    unknown = sorted(str(k) for k in entry if k not in _READ and k not in _KNOWN)
    problems.extend(Problem(file, f"{where}.{name}", "unknown field of Auth0's user import format") for name in unknown)
    user_id = entry.get("user_id")
    email = entry.get("email")
    if user_id is None and not isinstance(email, str):
        problems.append(Problem(file, where, "a user needs a user_id or an email"))
        return None
    if user_id is not None and not (isinstance(user_id, str) and user_id):
        problems.append(Problem(file, f"{where}.user_id", "must be a non-empty string"))
        return None
    # Auth0 names database users "auth0|<id>"; an import without user_id gets one from the e-mail.
    raw = user_id if isinstance(user_id, str) else str(email).lower()
    full = raw if "|" in raw else f"auth0|{raw}"
    password_hash = entry.get("password_hash")
    if password_hash is not None and not (isinstance(password_hash, str) and password_hash.startswith(_BCRYPT_PREFIXES)):
        problems.append(Problem(file, f"{where}.password_hash", "must be a bcrypt hash ($2a$, $2b$ or $2y$)"))
    profile: dict[str, Any] = {name: entry[name] for name in PROFILE_FIELDS if name in entry}
    for name in ("app_metadata", "user_metadata"):
        if name in entry:
            if isinstance(entry[name], Mapping):
                profile[name] = dict(entry[name])
            else:
                problems.append(Problem(file, f"{where}.{name}", "must be an object"))
    username = entry.get("username")
    return {
        "user_id": full,
        "profile": profile,
        "connection": connection,
        "username": username if isinstance(username, str) else None,
        "blocked": entry.get("blocked", False),
        "password_hash": password_hash if isinstance(password_hash, str) else None,
    }


def _mapping(value: Any, file: str, path: str, problems: list[Problem]) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append(Problem(file, path, "must be an object"))
        return {}
    return value


def with_users(tenant: Tenant, users: str | Path | None, assignments: str | Path | None = None) -> Tenant:
    """``tenant`` with the users of ``users`` (Auth0's import format) added, and the roles,
    organization memberships and second factors of ``assignments`` applied (to those users
    and to the tenant's own). Raises ``ConfigError`` listing every problem."""
    problems: list[Problem] = []
    companion: Mapping[str, Any] = {}
    companion_file = Path(assignments).name if assignments is not None else ""
    if assignments is not None:
        companion = _mapping(_read_json(Path(assignments), problems), companion_file, "", problems)
        problems.extend(Problem(companion_file, str(k), "unknown key") for k in companion if k not in _COMPANION_KEYS)
    connection = companion.get("connection", DEFAULT_CONNECTION)
    if not (isinstance(connection, str) and connection):
        problems.append(Problem(companion_file, "connection", "must be a non-empty string"))
        connection = DEFAULT_CONNECTION
    added: list[dict[str, Any]] = []
    if users is not None:
        file = Path(users).name
        raw = _read_json(Path(users), problems)
        if raw is not None and not isinstance(raw, list):
            problems.append(Problem(file, "", "must be a JSON array of users (Auth0's bulk import format)"))
        for i, entry in enumerate(raw if isinstance(raw, list) else []):
            if not isinstance(entry, Mapping):
                problems.append(Problem(file, f"[{i}]", "each user must be an object"))
                continue
            user = _user(entry, f"[{i}]", file, connection, problems)
            if user is not None:
                added.append(user)
    data = {name: getattr(tenant, name) for name in Tenant.model_fields}
    existing = [u.model_dump() for u in tenant.users]
    everyone = existing + added
    by_id = {u["user_id"]: u for u in everyone}
    for user_id, names in _mapping(companion.get("roles"), companion_file, "roles", problems).items():
        if user_id not in by_id:
            problems.append(Problem(companion_file, f"roles.{user_id}", f"no user {user_id!r}"))
        elif not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            problems.append(Problem(companion_file, f"roles.{user_id}", "must be a list of role names"))
        else:
            by_id[user_id]["roles"] = tuple(dict.fromkeys((*by_id[user_id].get("roles", ()), *names)))
    for user_id, factors in _mapping(companion.get("mfa"), companion_file, "mfa", problems).items():
        if user_id not in by_id:
            problems.append(Problem(companion_file, f"mfa.{user_id}", f"no user {user_id!r}"))
        else:
            by_id[user_id]["mfa"] = factors
    organizations = [o.model_dump() for o in tenant.organizations]
    for key, members in _mapping(companion.get("organizations"), companion_file, "organizations", problems).items():
        org = next((o for o in organizations if key in (o["id"], o["name"])), None)
        if org is None:
            problems.append(Problem(companion_file, f"organizations.{key}", f"no organization {key!r} (by id or name)"))
        elif not isinstance(members, list):
            problems.append(Problem(companion_file, f"organizations.{key}", "must be a list of members"))
        else:
            org["members"] = [*org["members"], *members]
    if problems:
        raise ConfigError(tuple(problems))
    data["users"] = everyone
    data["organizations"] = organizations
    for setting in ("default_directory", "mfa_policy"):
        if setting in companion:
            data[setting] = companion[setting]
    try:
        return Tenant.model_validate(data)
    except CrossReferenceError as exc:
        raise ConfigError(tuple(Problem(companion_file or "users", path, message) for path, message in exc.problems)) from None
    except ValidationError as exc:
        where = companion_file or "users"
        raise ConfigError(
            tuple(Problem(where, ".".join(str(p) for p in error["loc"]), error["msg"]) for error in exc.errors(include_input=False))
        ) from None


def matching_users(tenant: Tenant, username: str) -> list[User]:
    """The users a password-grant ``username`` may name: by e-mail (any case) or username, in any
    connection (the core picks the connection; the adapter only checks hashes)."""
    wanted = username.strip()
    lowered = wanted.lower()
    return [u for u in tenant.users if u.password_hash is not None and ((u.email or "").lower() == lowered or u.username == wanted)]


def password_matches(tenant: Tenant, username: str | None, password: str | None) -> tuple[str, ...]:
    """The ids of the users ``username`` may name whose bcrypt hash ``password`` matches."""
    if not username or password is None:
        return ()
    import bcrypt

    given = password.encode("utf-8", "surrogatepass")[:72]  # bcrypt reads at most 72 bytes
    matched: list[str] = []
    for user in matching_users(tenant, username):
        assert user.password_hash is not None
        try:
            if bcrypt.checkpw(given, user.password_hash.get_secret_value().encode("ascii")):
                matched.append(user.user_id)
        except ValueError:  # a hash bcrypt cannot read: no match
            continue
    return tuple(matched)
