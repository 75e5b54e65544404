"""Decision tables: rows agree with ``decide``, merging is exact, output is deterministic."""

from __future__ import annotations

import base64
import inspect
import re
from functools import cache

from hypothesis import given
from hypothesis import strategies as st

from claimsengine import Tenant, decide
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
    assert len(body) == 7
    assert all(line.rstrip().endswith("| yes |") for line in body), page
    assert "| /userinfo endpoint | Opaque |" in page
    assert "`https://login.northwind.com/`" in page


def test_html_is_self_contained() -> None:
    page = "".join(table_render.render_html(TableContext(example()).rows(), title="<b>t</b>"))
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page, re.IGNORECASE)
    assert "<link" not in page
    assert "@import" not in page
    assert "&lt;b&gt;t&lt;/b&gt;" in page
    assert page.count("<tr class=") == len(rows(0))


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
