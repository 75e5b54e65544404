"""Decision tables evaluate one of each set of structurally identical applications and stamp the
others (issue 13, target 6): the stamped table is the evaluated table, row for row."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from claimsengine import Tenant
from claimsengine.adapters import table_diff
from claimsengine.adapters.table import GRANTS, Outcome, Row, TableContext, stamp_class, twin_map
from claimsengine.testing import secret_for, tenants


def _twin_id(client_id: str) -> str:
    # The same length as the original: the engine checks a client id's length (R9).
    return "tw" + client_id[2:]


def _copied(value: Any, source: str, twin: str) -> Any:
    if value == source:
        return twin
    if isinstance(value, dict):
        return {k: _copied(v, source, twin) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copied(v, source, twin) for v in value]
    return value


def _with_references(value: Any, source: str, twin: str) -> Any:
    """``value`` with a copy for ``twin`` next to every record that names ``source``."""
    if isinstance(value, dict):
        return {k: _with_references(v, source, twin) for k, v in value.items()}
    if isinstance(value, list | tuple):
        out: list[Any] = []
        for item in value:
            out.append(_with_references(item, source, twin))
            if isinstance(item, dict) and source in item.values():
                out.append(_copied(item, source, twin))
        return out
    return value


def with_twin(tenant: Tenant, source: str, change: int = 0) -> Tenant:
    """``tenant`` with an application that differs from ``source`` only by its id, name, secret
    and first callback (with ``change`` > 0: and by one more thing the decision reads)."""
    twin = _twin_id(source)
    data = tenant.model_dump()
    clients = data.pop("clients")
    original = next(c for c in clients if c["client_id"] == source)
    copy = {**original, "client_id": twin, "name": "A twin", "client_secrets": [secret_for(twin)]}
    if copy["callbacks"]:
        copy["callbacks"] = ["https://twin.acme.com/cb", *copy["callbacks"][1:]]
    data = _with_references(data, source, twin)
    if change == 1:
        copy["is_first_party"] = not copy["is_first_party"]
    elif change == 2:
        dropped = next(((g["client_id"], g["audience"]) for g in data["client_grants"] if g["client_id"] == twin), None)
        data["client_grants"] = [g for g in data["client_grants"] if (g["client_id"], g["audience"]) != dropped]
        for org in data["organizations"]:
            org["client_grants"] = [r for r in org["client_grants"] if (r["client_id"], r["audience"]) != dropped]
    elif change == 3:
        copy["callbacks"] = []
    elif change == 4:
        copy["organization_usage"] = "require" if copy["organization_usage"] != "require" else "deny"
    return Tenant.model_validate({**data, "clients": [*clients, copy]})


def naive_rows(ctx: TableContext) -> list[Row]:
    """Every group evaluated, none stamped."""
    return [row for client, grant in ctx.groups() for row in ctx.group_rows(client, grant)]


def naive_diff(old: TableContext, new: TableContext) -> list[table_diff.Change]:
    """Every group of both tenants evaluated, none stamped (both have the same applications)."""
    clients = new.tenant.index.clients
    return [
        change
        for client, grant in old.groups()
        for change in table_diff._changes(
            old.evaluate_group(client, grant), new.evaluate_group(clients[client.client_id], grant), clients[client.client_id].name
        )
    ]


@settings(max_examples=8)
@given(tenant=tenants(), data=st.data())
def test_a_table_that_stamps_structurally_identical_applications_equals_the_evaluated_table(tenant: Tenant, data: st.DataObject) -> None:
    source = data.draw(st.sampled_from([c.client_id for c in tenant.clients]))
    change = data.draw(st.sampled_from([0, 0, 0, 1, 2, 3, 4]))
    wrong_secret = change == 0 and data.draw(st.booleans()) and data.draw(st.booleans())
    twinned = with_twin(tenant, source, change)
    twin = _twin_id(source)
    ctx = TableContext(twinned, {twin: "not-the-secret"} if wrong_secret else {})
    stamped = list(ctx.rows())
    assert stamped == naive_rows(ctx)
    for client, grant in ctx.groups():
        assert list(ctx.raw(client, grant).items()) == list(ctx.evaluate_group(client, grant).items())
    # A diff against an edit that changes many outcomes, stamped too, equals the evaluated diff.
    edited = twinned.model_dump()
    edited["behaviour"]["client_credentials_scopes"] = "grant" if twinned.behaviour.client_credentials_scopes != "grant" else "requested"
    edited["clients"][0]["is_first_party"] = not edited["clients"][0]["is_first_party"]
    other = TableContext(Tenant.model_validate(edited), ctx.secrets)
    assert list(table_diff.diff_tables(ctx, other)) == naive_diff(ctx, other)
    if change == 0 and not wrong_secret:
        # The twin was found, so the rows above were stamped, not evaluated.
        assert ctx.twins()[twin] == (source, twin)
        assert any(row.request.client == twin for row in stamped)


def _tenant(ledger: str = "urn:acme:ledger", *, clients_extra: bool = False, **extra: Any) -> Tenant:
    clients = [{"client_id": f"m2m-{i}", "name": f"M2M {i}", "client_secrets": [f"s-{i}"], "app_type": "non_interactive"} for i in range(3)]
    if clients_extra:  # and a web application that may use the password grant
        clients.append(
            {"client_id": "web", "name": "Web", "client_secrets": ["s-web"], "app_type": "regular_web",
             "grant_types": ["authorization_code", "refresh_token", "password"], "callbacks": ["https://web.example.com/cb"]}
        )  # fmt: skip
    apis = [{"identifier": "https://api.example.com", "scopes": ["read", "write"]}, {"identifier": ledger, "scopes": ["read"]}]
    grants = [{"client_id": c["client_id"], "audience": "https://api.example.com", "scope": ["read"]} for c in clients]
    return Tenant.model_validate({"domain": "t.auth0.com", "apis": apis, "clients": clients, "client_grants": grants, **extra})


def test_applications_that_differ_only_by_id_name_and_secret_are_twins_and_stamped_in_parallel_too() -> None:
    ctx = TableContext(_tenant())
    assert ctx.twins()["m2m-2"] == ("m2m-0", "m2m-1", "m2m-2")
    rep = ctx.tenant.index.clients["m2m-0"]
    assert ctx.witnessed(ctx.evaluate_group(rep, "client_credentials"), rep, "client_credentials", "m2m-1")
    assert list(ctx.rows(jobs=2)) == naive_rows(ctx)


def test_a_tenant_with_actions_has_no_twins_because_actions_can_read_the_client_id() -> None:
    def action(event: Any, api: Any) -> None:
        api.access_token.set_custom_claim("https://x/cid", event.client.client_id)

    ctx = TableContext(_tenant(credentials_exchange_actions=[action]))
    assert ctx.twins()["m2m-1"] == ("m2m-1",)
    assert list(ctx.rows()) == naive_rows(ctx)


def test_twins_whose_outcomes_hold_the_client_id_inside_other_text_are_evaluated_not_stamped() -> None:
    # "urn:m2m-0:ledger" holds m2m-0's id: stamping m2m-0's rejection text for m2m-1 would
    # rename the API in it too. The witness (the second twin, evaluated) catches that.
    ctx = TableContext(_tenant("urn:m2m-0:ledger"))
    rep = ctx.tenant.index.clients["m2m-0"]
    template = ctx.evaluate_group(rep, "client_credentials")
    assert not ctx.witnessed(template, rep, "client_credentials", "m2m-1")
    assert list(ctx.rows()) == naive_rows(ctx)
    m2m1 = ctx.tenant.index.clients["m2m-1"]
    assert ctx.raw(m2m1, "client_credentials") == ctx.evaluate_group(m2m1, "client_credentials")


def test_a_twin_whose_stamped_outcomes_would_coincide_is_evaluated_not_stamped() -> None:
    # Two outcomes of app-a that differ only where one names app-a and the other app-b would be
    # one outcome for app-b once stamped: its own table could merge them, so it is evaluated.
    one = Outcome("/oauth/token", "rejected", description="app-a")
    two = Outcome("/oauth/token", "rejected", description="app-b")
    evaluated: list[int] = []

    def evaluate(i: int) -> tuple[list[str], bool, frozenset[Outcome]]:
        evaluated.append(i)
        return [f"group {i}"], True, frozenset({one, two})

    groups = [("app-a", "g"), ("app-b", "g"), ("app-c", "g")]
    out = list(twin_map(groups, lambda _: "app-a", evaluate, lambda rows, old, new: [r + " for " + new for r in rows], 1))
    assert out == [["group 0"], ["group 1"], ["group 0 for app-c"]]
    assert evaluated == [0, 1]


def test_twins_have_one_class_shape_and_so_the_same_classes_but_for_their_client_id() -> None:
    ctx = TableContext(_tenant(organizations=[{"id": "org_1", "name": "one"}]))
    clients = ctx.tenant.index.clients
    for grant in GRANTS:
        assert ctx.class_shape(clients["m2m-0"], grant) == ctx.class_shape(clients["m2m-1"], grant)
        assert list(ctx.classes(clients["m2m-1"], grant)) == [stamp_class(c, "m2m-1") for c in ctx.classes(clients["m2m-0"], grant)]


def test_a_witness_of_a_group_refused_early_agrees_from_the_briefs_only_when_its_evaluated_group_does() -> None:
    ctx = TableContext(_tenant(clients_extra=True))
    clients = ctx.tenant.index.clients
    rep = clients["m2m-0"]
    briefs = {grant: ctx.early_group(rep, grant) for grant in GRANTS}
    refused = [grant for grant, brief in briefs.items() if brief is not None]
    assert "password" in refused
    assert "client_credentials" not in refused
    for grant in refused:
        brief = briefs[grant]
        assert brief is not None
        assert ctx.early_witnessed(brief, "m2m-0", grant, "m2m-1")
        assert ctx.witnessed(ctx.evaluate_group(rep, grant), rep, grant, "m2m-1")
        # The web app may use the password grant: its group is decided, not refused early.
        assert not ctx.early_witnessed(brief, "m2m-0", grant, "web") or ctx.witnessed(ctx.evaluate_group(rep, grant), rep, grant, "web")
    password = briefs["password"]
    assert password is not None
    assert not ctx.early_witnessed(password, "m2m-0", "password", "web")


def test_a_diff_that_skips_groups_refused_alike_early_equals_the_evaluated_diff() -> None:
    # Most groups of machine-to-machine applications are refused before their grant's own
    # parameters are read; a diff compares those by their answers and shapes. Each edit below
    # changes such groups in another way (or not at all); the diff must be the evaluated one.
    old = _tenant(clients_extra=True)
    data = old.model_dump()

    def granted(client_id: str, grant_types: list[str]) -> list[dict[str, Any]]:
        return [{**c, "grant_types": grant_types} if c["client_id"] == client_id else c for c in data["clients"]]

    edits: list[dict[str, Any]] = [
        data,  # nothing changed
        {**data, "organizations": [{"id": "org_1", "name": "one"}]},  # a class appears (not associated)
        {**data, "clients": granted("m2m-1", ["client_credentials", "password"])},  # no longer refused early
        {**data, "clients": granted("web", ["client_credentials"])},  # now refused early
        {**data, "domain": "other.auth0.com"},
    ]
    for edit in edits:
        before, after = TableContext(old), TableContext(Tenant.model_validate(edit))
        changes = list(table_diff.diff_tables(before, after))
        assert changes == naive_diff(before, after)
        assert (changes == []) == (edit is data)
