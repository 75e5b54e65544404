"""The real ``claimsengine`` command, run as a subprocess (``python -m claimsengine``)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from claimsengine.adapters.loader import load_tenant
from claimsengine.adapters.table import TableContext
from tests.conftest import CORPUS, EXAMPLE

M2M_SECRET = "example-billing-secret-not-for-production"
PARTNER_SECRET = "example-partner-secret-not-for-production"
ORDERS = "https://api.northwind.com/orders"
REPORTS = "https://reports.northwind.com"


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "claimsengine", *args], input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def m2m_request(**extra: str) -> str:
    params = {"grant_type": "client_credentials", "client_id": "nw-m2m-0001", "client_secret": M2M_SECRET, "audience": ORDERS}
    params.update(extra)
    return json.dumps(params)


def assert_clean_failure(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert result.stderr.strip()


# --- decide -------------------------------------------------------------------------------


def test_decide_issued() -> None:
    result = run("decide", "--now", "1700000000", stdin=m2m_request())
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["kind"] == "issued"
    assert out["format"] == "jwt"
    assert out["issuer"] == "https://northwind.auth0.com/"
    assert out["audience"] == ORDERS
    assert out["scope"] == "read:orders write:orders"
    assert out["expires_in"] == 86400
    assert out["claims"]["iat"] == 1700000000
    assert out["trace"][0] == "domain.resolved"
    assert "format.jwt" in out["trace"]
    assert M2M_SECRET not in result.stdout


def test_decide_rejected_exits_zero(tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    request.write_text(m2m_request(client_secret="wrong"))
    result = run("decide", "--request", str(request), "--now", "1700000000")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["kind"] == "rejected"
    assert (out["status"], out["error"]) == (401, "access_denied")
    assert out["trace"][-1] == "client.secret_invalid"
    assert {"error_description", "trace"} <= out.keys()


def test_decide_host_sets_issuer_and_basic_auth() -> None:
    import base64

    header = "Basic " + base64.b64encode(f"nw-partner-0001:{PARTNER_SECRET}".encode()).decode()
    params = json.dumps({"grant_type": "client_credentials", "audience": REPORTS, "organization": "org_acme0000000001"})
    result = run("decide", "--domain", "login.northwind.com", "--authorization", header, "--now", "1700000000", stdin=params)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["kind"] == "issued", out
    assert out["issuer"] == "https://login.northwind.com/"
    assert out["claims"]["org_id"] == "org_acme0000000001"


def test_decide_error_uri_when_set() -> None:
    params = json.dumps({"grant_type": "authorization_code", "client_id": "nw-m2m-0001", "client_secret": M2M_SECRET, "code": "x"})
    out = json.loads(run("decide", "--now", "1700000000", stdin=params).stdout)
    assert out["error"] == "unauthorized_client"
    assert out["error_uri"].startswith("https://auth0.com/docs/")


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '"grant_type"', ""])
def test_decide_bad_input_exits_2(text: str) -> None:
    result = run("decide", stdin=text)
    assert_clean_failure(result)
    assert "JSON" in result.stderr
    assert result.stdout == ""


def test_usage_errors_exit_2() -> None:
    assert_clean_failure(run("decide", "--now", "yesterday", stdin="{}"))
    assert_clean_failure(run("--keyword", "NOEQUALS", "check"))
    assert_clean_failure(run("no-such-command"))
    assert_clean_failure(run("decide", "--request", "/nonexistent/request.json"))


# --- explain ------------------------------------------------------------------------------


def test_explain_issued() -> None:
    result = run("explain", "--host", "login.northwind.com", "--now", "1700000000", stdin=m2m_request())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Outcome: issued a JWT access token for https://api.northwind.com/orders")
    assert any(line.strip().startswith("1. domain.resolved — request came through login.northwind.com") for line in lines)
    assert "custom_domains[0]: login.northwind.com" in result.stdout
    assert "clients[0]: Northwind Billing Service (nw-m2m-0001)" in result.stdout
    assert "apis[0]: Orders API" in result.stdout
    assert "client_grants[0]:" in result.stdout
    assert M2M_SECRET not in result.stdout


def test_explain_names_what_each_step_consulted_and_where_it_is_in_the_file() -> None:
    result = run("explain", "--now", "1700000000", stdin=m2m_request())
    assert result.returncode == 0, result.stderr
    steps = [line for line in result.stdout.splitlines() if line.strip().startswith(("2. ", "6. "))]
    assert "client.secret_valid" in steps[0]
    assert "consulted clients[0]" in steps[0]
    assert "grant.found" in steps[1]
    assert "consulted client_grants[0]" in steps[1]
    # The loader knows the lines: the consulted list points into the example tenant file.
    assert "clients[0]: Northwind Billing Service (nw-m2m-0001), auth method client_secret_post [northwind.yaml:" in result.stdout
    assert "client_grants[0]: nw-m2m-0001 -> https://api.northwind.com/orders (client)" in result.stdout


def test_explain_resolves_the_host_as_the_core_does() -> None:
    # A port, letter case and a trailing dot do not change the domain (domain.resolved).
    result = run("explain", "--domain", "LOGIN.northwind.com.:443", "--now", "1700000000", stdin=m2m_request())
    assert result.returncode == 0, result.stderr
    assert "iss https://login.northwind.com/" in result.stdout
    assert "custom_domains[0]: login.northwind.com" in result.stdout


def test_explain_rejected_with_organization() -> None:
    result = run("explain", "--now", "1700000000", stdin=m2m_request(organization="org_globex00000001"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Outcome: rejected with HTTP 403 access_denied")
    assert "Decided by rule org.not_associated" in result.stdout
    assert "organizations[1]: globex (org_globex00000001)" in result.stdout


# --- table --------------------------------------------------------------------------------


def test_table_markdown_is_the_default_when_piped() -> None:
    result = run("table")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("| application | grant | audience | scope | domain | organization |")
    assert "| Northwind Billing Service (nw-m2m-0001) |" in result.stdout
    assert len(lines) > 20
    assert M2M_SECRET not in result.stdout


def test_table_csv_and_json_agree() -> None:
    rows_csv = list(csv.DictReader(io.StringIO(run("table", "--format", "csv").stdout)))
    rows_json: list[dict[str, Any]] = json.loads(run("table", "--format", "json").stdout)
    assert len(rows_csv) == len(rows_json) > 0
    for a, b in zip(rows_csv, rows_json, strict=True):
        assert a["client"] == b["client"]
        assert a["kind"] == b["kind"]
        assert a["rules"].split() == b["rules"]


def test_table_html_to_file(tmp_path: Path) -> None:
    out = tmp_path / "table.html"
    result = run("table", "--format", "html", "--output", str(out))
    assert result.returncode == 0, result.stderr
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<script>" in page
    assert 'id="filter"' in page


# --- check --------------------------------------------------------------------------------


def test_check_example_is_clean() -> None:
    result = run("check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 error(s)" in result.stdout
    data = json.loads(run("check", "--format", "json").stdout)
    assert data["errors"] == 0


def corpus_file(name: str) -> Path:
    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"corpus file {name} is not available")
    return path


def test_check_corpus_clean_file() -> None:
    path = corpus_file("tjones-commits__auth0__tenant.yaml")
    result = run("--tenant", str(path), "--auth0-domain", "example.auth0.com", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    notes = [line for line in result.stdout.splitlines() if line.startswith("note:")]
    assert len(notes) == 1, "notes are summarised in one line"
    assert "derived ids" in notes[0]
    assert "-v lists them" in notes[0]
    verbose = run("--tenant", str(path), "--auth0-domain", "example.auth0.com", "check", "-v")
    assert sum(line.startswith("note: client") for line in verbose.stdout.splitlines()) > 1


def test_check_corpus_file_with_errors() -> None:
    # Its grants name the Management API of tom-dev.au.auth0.com: with another canonical
    # domain those grants point at no API, which is an error-severity finding.
    path = corpus_file("tswallen__auth0-configuration__tenant.yaml")
    wrong = run("--tenant", str(path), "--auth0-domain", "example.auth0.com", "check", "--format", "json")
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    data = json.loads(wrong.stdout)
    assert data["errors"] >= 1
    # Two public clients list client_credentials: Auth0 refuses to store that (issue 8, item 8).
    assert {f["code"] for f in data["findings"] if f["severity"] == "error"} == {"grant.missing_api", "client.public_client_credentials"}
    right = run("--tenant", str(path), "--auth0-domain", "tom-dev.au.auth0.com", "check", "--format", "json")
    assert right.returncode == 1, right.stdout + right.stderr
    errors = [(f["code"], f["path"]) for f in json.loads(right.stdout)["findings"] if f["severity"] == "error"]
    assert errors == [
        ("client.public_client_credentials", "clients[3].grant_types"),
        ("client.public_client_credentials", "clients[8].grant_types"),
    ]


def test_check_corpus_needs_domain() -> None:
    path = corpus_file("tjones-commits__auth0__tenant.yaml")
    result = run("--tenant", str(path), "check")
    assert_clean_failure(result)
    assert "--auth0-domain" in result.stderr


# --- diff ---------------------------------------------------------------------------------


def edited(tmp_path: Path, name: str, old: str, new: str) -> Path:
    text = EXAMPLE.read_text()
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1))
    return path


def test_diff_identical_exits_0() -> None:
    result = run("diff", str(EXAMPLE), str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert "No request class changes" in result.stdout


def test_diff_removing_a_scope_from_a_grant(tmp_path: Path) -> None:
    grant = "    audience: https://api.northwind.com/orders\n    scope: [read:orders, write:orders]\n    organization_usage: allow"
    new = edited(tmp_path, "narrow.yaml", grant, grant.replace("[read:orders, write:orders]", "[read:orders]"))
    result = run("diff", str(EXAMPLE), str(new), "--format", "json")
    assert result.returncode == 1, result.stderr
    changes: list[dict[str, Any]] = json.loads(result.stdout)
    assert changes
    # Exactly the rows of that client and API change, and only in client_credentials.
    assert {(c["client"], c["grant"], c["audience"]) for c in changes} == {("nw-m2m-0001", "client_credentials", ORDERS)}
    issued = [c for c in changes if c["new"]["kind"] == "issued"]
    assert issued
    assert all(c["old"]["scope"] == "read:orders write:orders" and c["new"]["scope"] == "read:orders" for c in issued)
    text = run("diff", str(EXAMPLE), str(new))
    assert text.returncode == 1
    assert "old: issued jwt" in text.stdout
    assert "change outcome" in text.stdout


def test_diff_unlinking_an_organization(tmp_path: Path) -> None:
    link = "      - client_id: nw-partner-0001\n        audience: https://reports.northwind.com\n"
    new = edited(tmp_path, "unlinked.yaml", link, "")
    changes: list[dict[str, Any]] = json.loads(run("diff", str(EXAMPLE), str(new), "--format", "json").stdout)
    assert changes
    assert {(c["client"], c["audience"]) for c in changes} == {("nw-partner-0001", REPORTS)}
    # No organization is linked any more: the "associated" class no longer exists, and the
    # "not associated" class now stands for acme (same error, another organization id).
    associated = [c for c in changes if c["organization"] == "associated"]
    assert associated
    assert all(c["new"] is None for c in associated)
    assert {c["scope"] for c in associated if c["old"]["kind"] == "issued"} == {"none", "granted"}
    others = [c for c in changes if c["organization"] != "associated"]
    assert all(c["organization"] == "not associated" and "org_acme0000000001" in c["new"]["description"] for c in others)


# --- clients, broken tenants, serve ---------------------------------------------------------


def test_clients_shows_secrets() -> None:
    result = run("clients", "--format", "json")
    assert result.returncode == 0, result.stderr
    creds = {c["client_id"]: c for c in json.loads(result.stdout)}
    assert creds["nw-m2m-0001"]["client_secret"] == M2M_SECRET
    assert creds["nw-m2m-0001"]["source"] == "export"
    assert M2M_SECRET in run("clients").stdout


@pytest.mark.parametrize(
    "content",
    [
        "domain: x.auth0.com\nclient_grants:\n  - client_id: nobody\n    audience: https://api\n",
        "domain: [unclosed\n",
        "- just\n- a list\n",
    ],
)
def test_broken_tenant_exits_2(tmp_path: Path, content: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(content)
    for command in (["check"], ["table"], ["decide"]):
        result = run("--tenant", str(path), *command, stdin="{}")
        assert_clean_failure(result)
        assert "cannot load the tenant configuration" in result.stderr


def test_global_options_after_the_command(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    result = run("check", "--tenant", str(path))
    assert_clean_failure(result)


def test_serve_help() -> None:
    result = run("serve", "--help")
    assert result.returncode in (0, 2)
    assert "Traceback" not in result.stderr
    if result.returncode == 0:
        assert "--port" in result.stdout


# --- jobs, progress, atomic output ------------------------------------------------------------


def test_table_and_diff_with_jobs_equal_one_process(tmp_path: Path) -> None:
    from claimsengine.adapters import table_diff
    from claimsengine.adapters.cli import main

    base = TableContext(load_tenant(EXAMPLE).tenant)
    assert list(base.rows(jobs=2)) == list(base.rows())
    grant = "    audience: https://api.northwind.com/orders\n    scope: [read:orders, write:orders]\n    organization_usage: allow"
    new = TableContext(
        load_tenant(edited(tmp_path, "narrow.yaml", grant, grant.replace("[read:orders, write:orders]", "[read:orders]"))).tenant
    )
    serial = list(table_diff.diff_tables(base, new))
    assert serial
    assert list(table_diff.diff_tables(base, new, jobs=2)) == serial
    with pytest.raises(SystemExit) as exit_info:
        main(["table", "--jobs", "0"])
    assert exit_info.value.code == 2


def test_progress_bar_only_on_a_terminal_and_only_for_slow_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from claimsengine.adapters import cli

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with cli._progress(3, "tabulating", after=60) as step:
        step()
    assert terminal.getvalue() == ""  # a fast run shows nothing
    with cli._progress(3, "tabulating", after=0) as step:
        for _ in range(3):
            step()
    assert "tabulating" in terminal.getvalue()
    piped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", piped)
    with cli._progress(3, "tabulating", after=0) as step:
        step()
    assert piped.getvalue() == ""


def test_a_failed_table_run_leaves_the_previous_output_file(tmp_path: Path) -> None:
    out = tmp_path / "table.html"
    out.write_text("previous\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("domain: [unclosed\n")
    result = run("--tenant", str(broken), "table", "--format", "html", "-o", str(out))
    assert result.returncode == 2
    assert out.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.yaml", "table.html"]


def test_keyword_accepts_json_for_array_keywords(tmp_path: Path) -> None:
    tenant = tmp_path / "tenant.yaml"
    tenant.write_text("clients:\n  - name: Shop\n    app_type: regular_web\n    callbacks: @@CALLBACKS@@\n")
    common = ("--tenant", str(tenant), "--auth0-domain", "shop.auth0.com")
    ok = run(*common, "--keyword", 'CALLBACKS=["https://shop.example.test/cb"]', "clients", "--format", "json")
    assert ok.returncode == 0, ok.stderr
    wrong = run(*common, "--keyword", "CALLBACKS=https://shop.example.test/cb", "check")
    assert_clean_failure(wrong)
    assert "tenant.yaml:clients[0].callbacks (line 4)" in wrong.stderr
    assert "@@CALLBACKS@@" in wrong.stderr
    assert "--keyword 'CALLBACKS=[" in wrong.stderr
    broken = run(*common, "--keyword", "CALLBACKS=[https://x", "check")
    assert_clean_failure(broken)
    assert "--keyword CALLBACKS" in broken.stderr
    assert "not valid JSON" in broken.stderr


def test_check_findings_carry_file_and_line() -> None:
    path = corpus_file("tswallen__auth0-configuration__tenant.yaml")
    result = run("--tenant", str(path), "--auth0-domain", "example.auth0.com", "check", "--format", "json")
    findings = json.loads(result.stdout)["findings"]
    assert findings
    for finding in findings:
        assert finding["file"] == path.name
        assert isinstance(finding["line"], int)
        assert finding["source_path"].startswith(("clientGrants[", "clients[", "resourceServers["))
    text = run("--tenant", str(path), "--auth0-domain", "example.auth0.com", "check").stdout
    assert f"at {path.name}:clientGrants[1].audience (line " in text
