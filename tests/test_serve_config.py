"""Configuration the usual ways (issue 10, item 7): every `serve` option from an environment
variable, the Deploy CLI's own config.json, and the canonical domain inferred from a grant to
the Management API, with a note that says so."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from claimsengine.adapters.loader import ConfigError, load_tenant, read_deploy_config
from claimsengine.adapters.server import add_arguments, environment_defaults

CORPUS = Path("..") / "shared" / "corpus" / "tenants"
DANCO = CORPUS / "Danco626__a0-deploy__tenant.yaml"
KEYWORDS = CORPUS / "auth0__auth0-deploy-cli__test_e2e_testdata_keyword-replacements_yaml_tenant.yaml"
ROOT = Path(__file__).resolve().parent.parent


def serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    for name in ("--tenant", "--auth0-domain", "--keyword-file", "--credentials"):
        parser.add_argument(name)
    parser.add_argument("--keyword", action="append")
    add_arguments(parser)
    return parser


def cli(*arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "claimsengine", *arguments]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)


# ---------------------------------------------------------------------------------------
# Environment variables
# ---------------------------------------------------------------------------------------


def test_every_serve_option_reads_its_environment_variable() -> None:
    parser = serve_parser()
    env = {
        "CLAIMSENGINE_PORT": "8443",
        "CLAIMSENGINE_HOST": "0.0.0.0",
        "CLAIMSENGINE_TLS": "yes",
        "CLAIMSENGINE_SERVE_AS": "auth.test:8443 other.test",
        "CLAIMSENGINE_RULE_HEADER": "0",
        "CLAIMSENGINE_READ_TIMEOUT": "2.5",
        "CLAIMSENGINE_TENANT": "tenant.yaml",
        "CLAIMSENGINE_AUTH0_DOMAIN": "acme.auth0.com",
        "CLAIMSENGINE_KEYWORD": "A=1 B=2",
        "CLAIMSENGINE_DEPLOY_CONFIG": "config.json",
    }
    environment_defaults(parser, env)
    args = parser.parse_args([])
    assert (args.port, args.host, args.tls, args.serve_as, args.rule_header, args.read_timeout) == (
        8443,
        "0.0.0.0",
        True,
        ["auth.test:8443", "other.test"],
        False,
        2.5,
    )
    given = (args.tenant, args.auth0_domain, args.keyword, args.deploy_config)
    assert given == ("tenant.yaml", "acme.auth0.com", ["A=1", "B=2"], "config.json")
    assert args.environment_problems == ()
    # The command line wins.
    assert parser.parse_args(["--port", "9000"]).port == 9000
    # Every option has a variable: none is left out of the loop.
    documented = (ROOT / "docs" / "server.md").read_text()
    for action in parser._actions:
        if action.option_strings and action.dest not in ("help", "environment_problems"):
            assert f"CLAIMSENGINE_{action.dest.upper()}" in documented, action.dest


def test_a_bad_environment_value_is_a_clear_serve_error_only() -> None:
    parser = serve_parser()
    environment_defaults(parser, {"CLAIMSENGINE_PORT": "eighty", "CLAIMSENGINE_TLS": "maybe"})
    assert parser.parse_args([]).environment_problems == (
        "CLAIMSENGINE_PORT='eighty': not a valid int",
        "CLAIMSENGINE_TLS='maybe': expected 1 or 0 (true/false, yes/no, on/off)",
    )
    env = {**os.environ, "CLAIMSENGINE_PORT": "eighty"}
    served = cli("serve", env=env)
    assert served.returncode == 2
    assert "claimsengine serve: CLAIMSENGINE_PORT='eighty': not a valid int" in served.stderr
    other = cli("clients", env=env)
    assert other.returncode == 0, other.stderr


# ---------------------------------------------------------------------------------------
# The Deploy CLI's config.json
# ---------------------------------------------------------------------------------------


def test_the_deploy_cli_config_json_is_read(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "AUTH0_DOMAIN": "acme-dev.eu.auth0.com",
                "AUTH0_CLIENT_ID": "deploy-cli-client",
                "AUTH0_KEYWORD_REPLACE_MAPPINGS": {"COMPANY_NAME": "Acme", "LANGUAGES": ["en", "fr"]},
            }
        )
    )
    read = read_deploy_config(config)
    assert read.domain == "acme-dev.eu.auth0.com"
    assert read.keywords == {"COMPANY_NAME": "Acme", "LANGUAGES": ["en", "fr"]}
    # Served from the environment alone, through the real CLI.
    log = tmp_path / "serve.log"
    env = {**os.environ, "CLAIMSENGINE_TENANT": str(KEYWORDS), "CLAIMSENGINE_DEPLOY_CONFIG": str(config), "CLAIMSENGINE_PORT": "0"}
    with log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "claimsengine", "serve"], stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r"serving (\S+) at (http://\S+)", log.read_text())) and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        assert found is not None, log.read_text()
        assert found.group(1) == "acme-dev.eu.auth0.com"
        url = found.group(2)
        with httpx.Client(timeout=10) as client:
            for _ in range(100):
                try:
                    discovery = client.get(f"{url}/.well-known/openid-configuration", headers={"Host": "acme-dev.eu.auth0.com"})
                    break
                except httpx.ConnectError:
                    time.sleep(0.05)
        assert discovery.json()["issuer"] == "https://acme-dev.eu.auth0.com/"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[]", "the Deploy CLI config must be a JSON object"),
        ("{", "cannot read the Deploy CLI config: JSONDecodeError"),
        ('{"AUTH0_DOMAIN": 3, "AUTH0_KEYWORD_REPLACE_MAPPINGS": []}', "AUTH0_DOMAIN: must be a non-empty string"),
        ('{"AUTH0_KEYWORD_REPLACE_MAPPINGS": "A=1"}', "AUTH0_KEYWORD_REPLACE_MAPPINGS: must be a mapping of keyword to value"),
    ],
)
def test_a_deploy_cli_config_that_is_not_one_says_why(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "config.json"
    config.write_text(content)
    with pytest.raises(ConfigError) as refused:
        read_deploy_config(config)
    assert message in str(refused.value)


# ---------------------------------------------------------------------------------------
# The canonical domain from a Management API grant
# ---------------------------------------------------------------------------------------


def test_the_canonical_domain_is_inferred_from_a_management_api_grant_with_a_note() -> None:
    loaded = load_tenant(DANCO)
    assert loaded.tenant.domain == "danco-hooks.auth0.com"
    notes = [note for note in loaded.notes if "inferred" in note]
    assert len(notes) == 1
    assert "clientGrants[0].audience" in notes[0]
    assert "pass --auth0-domain" in notes[0]
    # Given explicitly, nothing is inferred.
    assert not [n for n in load_tenant(DANCO, domain="other.auth0.com").notes if "inferred" in n]


def test_grants_to_two_management_apis_are_a_problem_that_names_both(tmp_path: Path) -> None:
    export = tmp_path / "tenant.yaml"
    export.write_text(
        "clients:\n  - name: svc\n    app_type: non_interactive\n"
        "clientGrants:\n"
        "  - {client_id: svc, audience: 'https://one.auth0.com/api/v2/', scope: [read:users]}\n"
        "  - {client_id: svc, audience: 'https://two.auth0.com/api/v2/', scope: [read:users]}\n"
    )
    with pytest.raises(ConfigError) as refused:
        load_tenant(export)
    expected = "no canonical domain: pass --auth0-domain or the AUTH0_DOMAIN keyword"
    assert f"{expected} (the Management API grants name one.auth0.com, two.auth0.com)" in str(refused.value)


def test_the_serve_banner_shows_an_inferred_domain_so_a_wrong_guess_is_seen(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    env = {**os.environ, "CLAIMSENGINE_TENANT": str(DANCO), "CLAIMSENGINE_PORT": "0"}
    with log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "claimsengine", "serve"], stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while "note: canonical domain" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        text = log.read_text()
        assert "serving danco-hooks.auth0.com at" in text
        assert "note: canonical domain danco-hooks.auth0.com inferred from" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
