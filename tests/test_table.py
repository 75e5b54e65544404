"""Decision tables: rows agree with ``decide``, merging is exact, output is deterministic."""

from __future__ import annotations

import base64
import inspect
import re
from dataclasses import replace
from functools import cache

from hypothesis import given
from hypothesis import strategies as st

from claimsengine import Authorized, Issued, Tenant, decide
from claimsengine.adapters import docgen, table, table_diff, table_render, wire
from claimsengine.adapters.table import ANY, RequestClass, Row, TableContext
from claimsengine.model import AuthMethod

NOW = table.NOW


@cache
def example() -> Tenant:
    import yaml

    from tests.conftest import EXAMPLE

    return Tenant.model_validate(yaml.safe_load(EXAMPLE.read_text()))


@cache
def variants() -> tuple[Tenant, ...]:
    """The example tenant and a few edits of it, so the properties see more than one shape."""
    base = example()
    no_custom_verified = base.model_copy(update={"custom_domains": (base.custom_domains[0].model_copy(update={"verified": False}),)})
    grants = tuple(
        g.model_copy(update={"allow_all_scopes": True, "scope": ()}) if g.client_id == "nw-m2m-0001" else g for g in base.client_grants
    )
    return (
        base,
        Tenant.model_validate(no_custom_verified.model_dump()),
        Tenant.model_validate({**base.model_dump(), "client_grants": [g.model_dump() for g in grants]}),
        Tenant.model_validate({**base.model_dump(), "default_audience": "https://api.northwind.com/orders"}),
    )


@cache
def context(index: int) -> TableContext:
    return TableContext(variants()[index])


@cache
def rows(index: int) -> tuple[Row, ...]:
    return tuple(context(index).rows())


def independent_outcome(tenant: Tenant, cls: RequestClass, ctx: TableContext) -> table.Outcome:
    """Build a client_credentials request from the class by hand, and ask ``decide``."""
    client = tenant.index.clients[cls.client]
    params: dict[str, str] = {"grant_type": "client_credentials"}
    authorization = None
    secret = client.client_secrets[0].get_secret_value() if client.client_secrets else ""
    if client.auth_method is AuthMethod.CLIENT_SECRET_BASIC:
        authorization = "Basic " + base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
    elif client.auth_method is AuthMethod.NONE:
        params["client_id"] = client.client_id
    else:
        params.update(client_id=client.client_id, client_secret=secret)
    if cls.audience != table.NO_AUDIENCE:
        params["audience"] = cls.audience
    scope = ctx.scope_value(cls)
    if scope is not None:
        params["scope"] = scope
    org = ctx.organization_value(cls)
    if org is not None:
        params["organization"] = org
    request = wire.token_request(params, domain=cls.domain, authorization=authorization)
    return table.outcome_of(decide(request, tenant, now=NOW), cls.domain)


@given(data=st.data(), index=st.integers(0, 3))
def test_every_row_agrees_with_decide(data: st.DataObject, index: int) -> None:
    ctx = context(index)
    row = data.draw(st.sampled_from(rows(index)))
    members = ctx.expand(row.request)
    assert members, row
    cls = data.draw(st.sampled_from(members))
    assert ctx.evaluate(cls) == row.outcome
    if cls.grant == "client_credentials":
        assert independent_outcome(ctx.tenant, cls, ctx) == row.outcome


def test_rows_partition_the_request_classes() -> None:
    for index in range(len(variants())):
        ctx = context(index)
        covered: list[RequestClass] = []
        for row in rows(index):
            covered.extend(ctx.expand(row.request))
        everything = list(ctx.all_classes())
        assert len(covered) == len(set(covered)) == len(everything)
        assert set(covered) == set(everything)


def test_merge_rows_merges_only_whole_dimensions() -> None:
    def cls(scope: str, domain: str, org: str) -> RequestClass:
        return RequestClass("c", "client_credentials", "a", scope, domain, org)

    raw = {
        cls("none", "d1", "none"): "x",
        cls("none", "d2", "none"): "x",
        cls("none", "d1", "unknown"): "y",
        cls("none", "d2", "unknown"): "z",
        cls("openid", "d1", "none"): "x",
        cls("openid", "d2", "none"): "x",
        cls("openid", "d1", "unknown"): "x",
        cls("openid", "d2", "unknown"): "x",
    }
    merged = table.merge_rows(raw)
    assert merged == [
        (cls("none", ANY, "none"), "x"),
        (cls("none", "d1", "unknown"), "y"),
        (cls("none", "d2", "unknown"), "z"),
        (cls("openid", ANY, ANY), "x"),
    ]
    # Nothing to merge when every value differs.
    distinct = {k: str(i) for i, k in enumerate(raw)}
    assert table.merge_rows(distinct) == list(distinct.items())


def test_merge_rows_never_claims_a_missing_class() -> None:
    # "associated" exists for one audience only; a partial partition must not become "any".
    raw = {
        RequestClass("c", "g", "a1", "none", "d", "none"): "x",
        RequestClass("c", "g", "a1", "none", "d", "associated"): "x",
        RequestClass("c", "g", "a2", "none", "d", "none"): "x",
    }
    merged = table.merge_rows(raw)
    for key, _ in merged:
        expanded = [k for k in raw if all(key.get(d) in (ANY, k.get(d)) for d in table.DIMENSIONS)]
        assert expanded
    assert sum(len([k for k in raw if all(key.get(d) in (ANY, k.get(d)) for d in table.DIMENSIONS)]) for key, _ in merged) == len(raw)


def test_issuer_is_domain_derived_so_domains_merge() -> None:
    issued = [r for r in rows(0) if r.outcome.kind == "issued"]
    assert issued
    assert all(r.outcome.iss == "https://{domain}/" for r in issued)
    assert all(r.request.domain == ANY for r in issued)


def test_table_is_deterministic_and_streamed() -> None:
    first = "".join(table_render.render_markdown(TableContext(example()).rows()))
    second = "".join(table_render.render_markdown(TableContext(example()).rows()))
    assert first == second
    assert inspect.isgenerator(TableContext(example()).rows())
    assert inspect.isgenerator(table_render.render_csv(iter(())))


def test_seed_table_agrees_with_the_seed() -> None:
    page = docgen.render_seed_table(example())
    body = [line for line in page.splitlines() if line.startswith("| ") and "Token use" not in line]
    assert len(body) == 11
    assert all(line.rstrip().endswith("| yes |") for line in body), page
    assert sum(line.startswith("| /userinfo endpoint | Opaque |") for line in body) == 3
    assert "`https://login.northwind.com/`" in page


def _seed(use: str, flow: str = "authorization_code") -> list[docgen.SeedCase]:
    return [c for c in docgen.seed_cases(example()) if c.token_use == use and c.flow == flow]


def test_the_seed_table_asks_userinfo_the_three_ways_the_seed_lists() -> None:
    # Issue 8, item 11: no audience parameter, audience= with no value, and the tenant name
    # (read as the tenant's /userinfo identifier, specs/choices.md).
    ctx = TableContext(example())
    cases = _seed("/userinfo endpoint")
    assert [c.audience for c in cases] == [table.NO_AUDIENCE, "", "https://northwind.auth0.com/userinfo"]
    sent = []
    for case in cases:
        request = ctx.authorize_request(RequestClass(case.client_id, case.flow, case.audience, "openid", case.domain, "none"))
        sent.append(request.audience)
        authorized = decide(request, ctx.tenant, now=ctx.now)
        assert isinstance(authorized, Authorized)
        assert authorized.grant.audience is None
        rules = [r.rule.value for r in authorized.trace]
        assert ("audience.explicit" in rules) is bool(case.audience and case.audience != table.NO_AUDIENCE)
        assert "audience.userinfo" in rules
        issued = docgen.run_seed_case(ctx, case)
        assert isinstance(issued, Issued)
        assert (issued.format.value, issued.audience) == ("opaque", "https://northwind.auth0.com/userinfo")
    assert sent == [None, "", "https://northwind.auth0.com/userinfo"]


def test_the_seed_table_asks_the_management_api_through_the_user_flow_too() -> None:
    [machine] = _seed("Auth0 Management API", "client_credentials")
    [user] = _seed("Auth0 Management API")
    issued = docgen.run_seed_case(TableContext(example()), user)
    assert isinstance(issued, Issued)
    assert (issued.audience, issued.scope, issued.claims["sub"]) == (machine.audience, "read:current_user", "auth0|alice")


def test_the_seed_tables_agreement_check_compares_scopes() -> None:
    ctx = TableContext(example())
    for case in docgen.seed_cases(example()):
        decision = docgen.run_seed_case(ctx, case)
        assert docgen.seed_agrees(case, decision)
        # The expected scope comes from the seed (user flows) or the client grant (R29), never the engine.
        assert case.expect_scope is not None
        assert not docgen.seed_agrees(replace(case, expect_scope=case.expect_scope + " delete:orders"), decision)
    # A grant with another scope list makes the client-credentials rows disagree.
    data = example().model_dump()
    for grant in data["client_grants"]:
        if grant["client_id"] == "nw-m2m-0001" and grant["audience"] == "https://api.northwind.com/orders":
            grant["scope"] = ["read:orders"]
    narrowed = Tenant.model_validate(data)
    [m2m] = [c for c in docgen.seed_cases(narrowed) if c.flow == "client_credentials" and c.audience == "https://api.northwind.com/orders"]
    assert m2m.expect_scope == "read:orders"
    assert docgen.seed_agrees(m2m, docgen.run_seed_case(TableContext(narrowed), m2m))


def test_the_seed_table_exchanges_a_code_through_another_domain_than_authorize() -> None:
    [case] = [c for c in docgen.seed_cases(example()) if c.exchange_domain is not None]
    assert (case.domain, case.exchange_domain) == ("login.northwind.com", "northwind.auth0.com")
    issued = docgen.run_seed_case(TableContext(example()), case)
    assert isinstance(issued, Issued)
    rules = [r.rule.value for r in issued.trace]
    assert rules[0] == "domain.resolved"
    assert issued.trace[0].detail == "request came through northwind.auth0.com"
    assert "iss.authorize_domain" in rules
    assert issued.issuer == "https://login.northwind.com/"


def test_html_is_self_contained() -> None:
    page = "".join(table_render.render_html(TableContext(example()).rows(), title="<b>t</b>"))
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page, re.IGNORECASE)
    assert "<link" not in page
    assert "@import" not in page
    assert "&lt;b&gt;t&lt;/b&gt;" in page
    data = page[page.index('<script type="application/json" id="rows">') :]
    data = data[data.index(">") + 1 : data.index("</script>")]
    import json

    assert len(json.loads(data)) == len(rows(0))


def test_json_and_csv_render_every_row() -> None:
    import csv
    import io
    import json

    data = json.loads("".join(table_render.render_json(rows(0))))
    assert [d["kind"] for d in data] == [r.outcome.kind for r in rows(0)]
    parsed = list(csv.DictReader(io.StringIO("".join(table_render.render_csv(rows(0))))))
    assert len(parsed) == len(rows(0))
    assert tuple(parsed[0]) == table.COLUMNS


def test_diff_of_identical_tenants_is_empty() -> None:
    assert list(table_diff.diff_tables(TableContext(example()), TableContext(example()))) == []


def test_diff_reports_a_change_in_claims_alone() -> None:
    # Turning off org names changes no format, audience or scope, only the org_name claim.
    base = example()
    without = Tenant.model_validate({**base.model_dump(), "allow_organization_name_in_authentication_api": False})
    changes = list(table_diff.diff_tables(TableContext(base), TableContext(without)))
    assert changes, "a claim-only change must be reported"
    for change in changes:
        assert change.old is not None
        assert change.new is not None
        assert "org_name" in change.old.claims
        assert "org_name" not in change.new.claims
        assert change.new.summary() != change.old.summary()


def _edit(path: str, value: object) -> Tenant:
    """The example tenant with one setting changed; ``path`` is like ``apis[0].token_lifetime``."""

    def thaw(value: object) -> object:
        if isinstance(value, dict):
            return {k: thaw(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [thaw(v) for v in value]
        return value

    data = thaw(example().model_dump())
    *parents, last = re.findall(r"[^.\[\]]+", path)
    node: object = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]  # type: ignore[index]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        assert isinstance(node, dict)
        assert last in node, path
        node[last] = value
    return Tenant.model_validate(data)


# Every tenant setting that changes an issued token (or turns it into an error), and the
# outcome field diff must report for it.
TOKEN_SETTINGS = [
    ("apis[0].token_lifetime", 60, "expires_in", "lifetime.api"),
    ("apis[0].signing_alg", "PS256", "alg", "signing.tenant_key"),
    ("apis[1].token_dialect", "access_token", "typ", "claims.rfc9068"),
    ("apis[0].token_dialect", "access_token", "claims", "claims.permissions_m2m"),
    ("apis[0].allow_offline_access", False, "refresh_token", "refresh.omitted"),
    ("apis[0].enforce_policies", False, "claims", "claims.permissions_user"),
    ("clients[1].id_token_lifetime", 600, "id_token_expires_in", "id_token.issued"),
    ("client_grants[0].scope", ["read:orders"], "scope", "scope.grant_list"),
    ("allow_organization_name_in_authentication_api", False, "claims", "org.allowed"),
    ("default_audience", "https://api.northwind.com/orders", "aud", "audience.default"),
    ("clients[0].grant_types", ["authorization_code"], "kind", "client.grant_type_not_allowed"),
]


def test_every_token_setting_is_in_the_rows_and_diff_reports_it_with_rule_ids() -> None:
    base = TableContext(example())
    for path, value, changed_field, rule in TOKEN_SETTINGS:
        changes = list(table_diff.diff_tables(base, TableContext(_edit(path, value))))
        assert changes, f"diff misses a change of {path}"
        found = [f for c in changes for f in c.fields() if f.field == changed_field]
        assert found, f"{path}: no change of {changed_field} in {[f.field for c in changes for f in c.fields()]}"
        assert any(rule in f.rules for f in found), f"{path}: {changed_field} not explained by {rule}: {found[0].rules}"
        for change in changes:
            assert change.fields() or change.rule_delta() != ((), ()), "a reported change must show what changed"


def test_rows_carry_lifetime_header_refresh_and_id_token() -> None:
    issued = [r for r in rows(0) if r.outcome.kind == "issued"]
    assert all(r.outcome.expires_in is not None for r in issued)
    jwts = [r for r in issued if r.outcome.format == "jwt"]
    assert jwts
    assert all(r.outcome.alg is not None and r.outcome.typ for r in jwts)
    assert all(r.outcome.alg is None for r in issued if r.outcome.format == "opaque")
    assert any(r.outcome.refresh_token for r in issued), "the offline scope class must get a refresh token somewhere"
    assert any(r.outcome.id_token and r.outcome.id_token_expires_in for r in issued)
    assert {r.outcome.typ for r in jwts} == {"JWT", "at+jwt"}
    rejected = [r for r in rows(0) if r.outcome.kind == "rejected"]
    assert rejected
    assert all(r.outcome.description and r.outcome.alg is None and r.outcome.expires_in is None for r in rejected)


def test_json_has_real_arrays_and_nulls_and_markdown_has_the_error_text() -> None:
    import json

    data = json.loads("".join(table_render.render_json(rows(0))))
    arrays = [d for d in data if isinstance(d["aud"], list)]
    assert arrays, "an openid request to a custom API gets an aud array"
    assert all(len(d["aud"]) == 2 for d in arrays)
    assert all(isinstance(d["claims"], list) and isinstance(d["rules"], list) for d in data)
    rejected = [d for d in data if d["kind"] == "rejected"]
    assert all(d["format"] is None and d["expires_in"] is None and isinstance(d["status"], int) for d in rejected)
    issued = [d for d in data if d["kind"] == "issued"]
    assert all(d["error"] is None and d["status"] is None and isinstance(d["refresh_token"], bool) for d in issued)
    assert {d["client_name"] for d in data} >= {"Northwind Billing Service", "Northwind Storefront"}
    page = "".join(table_render.render_markdown(rows(0)))
    for row in rows(0):
        if row.outcome.description:
            assert table_render.md_cell(row.outcome.description) in page


def test_terminal_table_fits_80_and_120_columns_and_names_applications() -> None:
    import io

    from rich.console import Console

    for width in (80, 120):
        buffer = io.StringIO()
        table_render.render_terminal(iter(rows(0)), "Decision table", Console(width=width, file=buffer, force_terminal=False))
        lines = buffer.getvalue().splitlines()
        assert max(len(line) for line in lines) <= width
        assert sum("→ " in line for line in lines) == len(rows(0))
        assert "Northwind Billing Service (nw-m2m-0001) · client_credentials" in buffer.getvalue()
