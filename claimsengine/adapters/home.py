"""``GET /``: the fake tenant at a glance (issue 10 item 3).

Domains, applications with their effective ids, grant types and secrets (this is a test
double: a developer needs them to call it), APIs, users, organizations, and the recent
decisions with their traces (rule ids and texts). Everything shown is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from claimsengine.adapters import control, login

if TYPE_CHECKING:
    from claimsengine.adapters.server import FakeTenant

__all__ = ["RECENT", "home", "render"]

# How many of the kept decisions the page lists, newest first.
RECENT = 25


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _list(values: Iterable[Any]) -> str:
    items = [f"<li>{_e(v)}</li>" for v in values]
    return f"<ul>{''.join(items)}</ul>" if items else ""


def _table(table_id: str, head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    header = "".join(f"<th scope=col>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table id={table_id}><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def render(fake: FakeTenant, decisions: Sequence[dict[str, Any]]) -> str:
    """The home page's HTML for the current generation and ``decisions`` (newest first)."""
    tenant = fake.tenant
    domains = [tenant.domain, *(d.domain for d in tenant.custom_domains)]
    clients = [
        (
            f"<code>{_e(c.client_id)}</code>",
            _e(c.name),
            _e(c.app_type or ""),
            _e("first-party" if c.is_first_party else "third-party"),
            _e(c.auth_method.value),
            _list(c.effective_grant_types),
            _list(s.get_secret_value() for s in c.client_secrets),
            _list(c.callbacks),
            _list(c.allowed_logout_urls),
        )
        for c in tenant.clients
    ]
    apis = [(f"<code>{_e(a.identifier)}</code>", _e(a.name), _list(a.scopes)) for a in tenant.apis]
    users = [
        (f"<code>{_e(u.user_id)}</code>", _e(u.email or ""), _e(u.connection or ""), _list(u.roles), _e("blocked" if u.blocked else ""))
        for u in tenant.users
    ]
    orgs = [(f"<code>{_e(o.id)}</code>", _e(o.name), _list(m.user_id for m in o.members)) for o in tenant.organizations]
    recent = [
        (
            _e(d.get("endpoint")),
            _e(d.get("client_id") or ""),
            _e(d.get("outcome")) + (f" <code>{_e(d['error'])}</code>" if d.get("error") else ""),
            _e(d.get("status")),
            "<ol>"
            + "".join(
                f"<li><code>{_e(r.get('rule'))}</code> {_e(r.get('detail'))}"
                + (f" <small>({_e(r['ref'])})</small>" if r.get("ref") else "")
                for r in d.get("trace", ())
            )
            + "</ol>",
        )
        for d in decisions
    ]
    login_state = "on: /authorize shows a login form" if fake.login_page else "off: /authorize logs in without a form"
    body = (
        f"<header><h1>claimsengine: fake Auth0 tenant <code>{_e(tenant.domain)}</code></h1>"
        f"<p>Generation {fake.generation.number}. Login page {_e(login_state)}. "
        f"Discovery: <a href='/.well-known/openid-configuration'>/.well-known/openid-configuration</a>; "
        f"decisions as JSON: <a href='{control.DECISIONS_PATH}'>{_e(control.DECISIONS_PATH)}</a>; "
        f"logout: <a href='{login.V2_LOGOUT_PATH}'>{login.V2_LOGOUT_PATH}</a>.</p></header><main>"
        f"<section aria-labelledby=h-domains><h2 id=h-domains>Domains</h2>{_list(domains)}"
        f"<p>Allowed logout URLs (tenant): {_e(', '.join(tenant.allowed_logout_urls) or 'none')}</p></section>"
        "<section aria-labelledby=h-apps><h2 id=h-apps>Applications</h2>"
        + _table(
            "applications",
            ("client_id", "name", "type", "party", "auth method", "grant types", "secrets", "callbacks", "logout URLs"),
            clients,
        )
        + "</section><section aria-labelledby=h-apis><h2 id=h-apis>APIs</h2>"
        + _table("apis", ("identifier", "name", "scopes"), apis)
        + "</section><section aria-labelledby=h-users><h2 id=h-users>Users</h2>"
        + _table("users", ("user_id", "email", "connection", "roles", ""), users)
        + "</section><section aria-labelledby=h-orgs><h2 id=h-orgs>Organizations</h2>"
        + _table("organizations", ("id", "name", "members"), orgs)
        + f"</section><section aria-labelledby=h-decisions><h2 id=h-decisions>Recent decisions (newest first, at most {RECENT})</h2>"
        + _table("decisions", ("endpoint", "client", "outcome", "status", "trace"), recent)
        + "</section></main>"
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>claimsengine: "
        f"{_e(tenant.domain)}</title><style>body{{font-family:sans-serif;margin:1em 2em}}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .4em;vertical-align:top;text-align:left}"
        f"ul,ol{{margin:0;padding-left:1.2em}}</style></head><body>{body}</body></html>"
    )


async def home(request: Request) -> Response:
    """``GET /``: the home page. Like the admin API it refuses to be framed by another site."""
    fake: FakeTenant = request.app.state.auth0
    decisions = list(reversed(fake.decisions()[-RECENT:]))
    headers = {
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    }
    return HTMLResponse(render(fake, decisions), headers=headers)
