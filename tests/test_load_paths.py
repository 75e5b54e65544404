"""The fast paths of loading and start-up give what the slow ones gave (issue 13, targets 5 and 7).

JSON goes through the JSON parser and YAML through libyaml when PyYAML has it; line numbers
are composed only when a problem, a warning or ``SourceMap.locate`` needs them. The pure-Python
YAML path is what runs where libyaml is absent: ``loader.LIBYAML`` is the switch the loader
itself reads, so setting it to False runs exactly that code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from claimsengine import Behaviour, JwtHeader, QuotaUsage, SigningAlg, Tenant
from claimsengine.adapters import loader
from claimsengine.adapters.loader import ConfigError, Lines, line_table, load_tenant
from claimsengine.adapters.server import strict_host, with_served_domains
from claimsengine.model import DEFAULT_REFRESH_SETTINGS, SPA_REFRESH_SETTINGS, RefreshTokenSettings, TokenRequest
from claimsengine.tokens import _HEADERS
from tests.conftest import EXAMPLE

DOMAIN = "acme.auth0.com"

BAD_YAML = """\
resourceServers:
  - identifier: https://orders.example.test
    signing_alg: RS257
clients:
  - name: Worker
    app_type: non_interactive
    jwt_configuration:
      lifetime_in_seconds: 0
clientGrants:
  - client_id: Nobody
    audience: https://orders.example.test
"""

BAD_OWN_JSON = {
    "domain": DOMAIN,
    "apis": [{"identifier": "https://orders.example.test", "signing_alg": "RS257"}],
    "clients": [{"client_id": "c1", "app_type": "non_interactive", "id_token_lifetime": 0}],
    "client_grants": [{"client_id": "nobody", "audience": "https://orders.example.test"}],
}


@pytest.fixture(params=[True, False], ids=["libyaml", "pure-python"])
def libyaml(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    if request.param and not yaml.__with_libyaml__:
        pytest.skip("PyYAML here has no libyaml")
    monkeypatch.setattr(loader, "LIBYAML", request.param)
    return bool(request.param)


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as excinfo:
        load_tenant(path, domain=DOMAIN)
    return [str(p) for p in excinfo.value.problems]


def test_yaml_problems_carry_their_lines_with_and_without_libyaml(tmp_path: Path, libyaml: bool) -> None:
    path = tmp_path / "tenant.yaml"
    path.write_text(BAD_YAML)
    assert problems_of(path) == [
        "tenant.yaml:clientGrants[0].client_id (line 10): no client named 'Nobody'",
        "tenant.yaml:resourceServers[0].signing_alg (line 3): 'RS257' is invalid: Input should be 'RS256', 'PS256' or 'HS256'",
        "tenant.yaml:clients[0].jwt_configuration.lifetime_in_seconds (line 8): 0 is invalid: Input should be greater than or equal to 1",
    ]


def test_json_problems_carry_their_lines_with_and_without_libyaml(tmp_path: Path, libyaml: bool) -> None:
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps(BAD_OWN_JSON, indent=2))
    found = problems_of(path)
    text = path.read_text().splitlines()
    assert len(found) == 2  # (the cross-reference check runs once the fields are valid)
    for problem, key in zip(found, ("signing_alg", "id_token_lifetime"), strict=True):
        line = int(problem.split("(line ")[1].split(")")[0])
        assert f'"{key}"' in text[line - 1], (problem, text[line - 1])


def test_a_yaml_syntax_error_reads_the_same_with_and_without_libyaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tenant.yaml"
    path.write_text("clients:\n  - name: A\n    app_type: [spa\n  - name: B\n")
    seen = []
    for fast in (True, False):
        monkeypatch.setattr(loader, "LIBYAML", fast and yaml.__with_libyaml__)
        seen.append(problems_of(path))
    assert seen[0] == seen[1]
    assert seen[0][0].startswith("tenant.yaml (line 4): invalid YAML: ")


def test_invalid_json_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "tenant.json"
    path.write_text('{\n  "domain": "acme.auth0.com",\n  "clients": [,]\n}\n')
    assert problems_of(path) == ["tenant.json (line 3): invalid JSON: Expecting value"]


def test_both_yaml_parsers_load_the_same_tenant(libyaml: bool) -> None:
    loaded = load_tenant(EXAMPLE)
    loader.LIBYAML = not libyaml and yaml.__with_libyaml__  # the other parser (monkeypatch restores it)
    other = load_tenant(EXAMPLE)
    assert loaded.tenant == other.tenant
    assert (loaded.warnings, loaded.notes, loaded.credentials) == (other.warnings, other.notes, other.credentials)


def test_a_clean_json_load_still_locates_lines_for_explain(tmp_path: Path, libyaml: bool) -> None:
    path = tmp_path / "tenant.json"
    data = {**BAD_OWN_JSON, "apis": [{"identifier": "https://orders.example.test"}]}
    data["clients"] = [{"client_id": "c1", "app_type": "non_interactive", "client_secrets": ["s"]}]
    data["client_grants"] = [{"client_id": "c1", "audience": "https://orders.example.test", "scope": ["read"]}]
    path.write_text(json.dumps(data, indent=2))
    loaded = load_tenant(path)
    where = loaded.source.locate("client_grants[0].scope")
    assert (where.file, where.path) == ("tenant.json", "client_grants[0].scope")
    assert where.line is not None
    assert '"scope"' in path.read_text().splitlines()[where.line - 1]


def test_line_tables_are_composed_once_and_only_when_asked() -> None:
    lines = Lines()
    lines.add("a.yaml", "x:\n  - 1\n  - y: 2\n")
    assert list(lines) == ["a.yaml"]
    assert len(lines) == 1
    table = lines["a.yaml"]
    assert dict(table) == {"x": 1, "x[0]": 2, "x[1]": 3, "x[1].y": 3}
    assert lines["a.yaml"] is table
    assert lines.get("b.yaml") is None
    assert line_table("a: [b") == {}  # not YAML: no lines, no error (they are a nicety)


def test_adding_served_domains_gives_the_tenant_validation_gives() -> None:
    tenant = load_tenant(EXAMPLE).tenant
    served = with_served_domains(tenant, ["127.0.0.1:4000", "LOCALHOST:4000", tenant.domain])
    fields = {name: getattr(served, name) for name in Tenant.model_fields}
    assert served == Tenant.model_validate(fields)
    assert [d.domain for d in served.custom_domains][-2:] == ["127.0.0.1:4000", "localhost:4000"]
    assert "localhost:4000" in served.index.domains
    assert with_served_domains(served, ["localhost:4000"]) is served


def test_strict_host_gives_the_tenant_validation_gives() -> None:
    tenant = load_tenant(EXAMPLE).tenant
    strict = strict_host(tenant.model_copy(update={"behaviour": Behaviour(unknown_host="default")}))
    fields = {name: getattr(strict, name) for name in Tenant.model_fields}
    assert strict == Tenant.model_validate(fields)
    assert strict.behaviour.unknown_host == "reject"


def test_constants_built_without_validation_equal_their_validated_forms() -> None:
    assert RefreshTokenSettings() == DEFAULT_REFRESH_SETTINGS
    assert RefreshTokenSettings.model_validate(SPA_REFRESH_SETTINGS.model_dump(exclude_unset=True)) == SPA_REFRESH_SETTINGS
    assert Tenant.model_fields["behaviour"].default == Behaviour()
    assert TokenRequest.model_fields["quota_usage"].default == QuotaUsage()
    assert {(alg, typ): JwtHeader(alg=alg, typ=typ) for alg in SigningAlg for typ in ("JWT", "at+jwt")} == _HEADERS


def test_every_exported_name_resolves_lazily_to_its_defining_module() -> None:
    import claimsengine
    from claimsengine import _WHERE

    assert sorted(_WHERE) == sorted(claimsengine.__all__)
    for name, module in _WHERE.items():
        value = getattr(claimsengine, name)
        assert value is getattr(__import__(f"claimsengine.{module}", fromlist=[name]), name)
    assert set(claimsengine.__all__) <= set(dir(claimsengine))
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = claimsengine.nothing_here


def test_importing_the_package_alone_imports_no_pydantic() -> None:
    import subprocess
    import sys

    code = "import sys, claimsengine; print(sorted(m for m in sys.modules if m.startswith(('pydantic', 'claimsengine.'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
