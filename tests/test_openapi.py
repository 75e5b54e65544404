"""specs/openapi.yaml against a real loopback server: schemathesis finds no 5xx and no response
outside the spec (status, headers, content type, schema), within a bounded run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from claimsengine.adapters.loader import load_tenant
from claimsengine.adapters.server import EXAMPLE_TENANT, LiveServer, create_app, serve_in_thread
from claimsengine.adapters.signing import KeySet

ROOT = Path(__file__).resolve().parent.parent
schema = schemathesis.openapi.from_path(ROOT / "specs" / "openapi.yaml")
CHECKS = [
    not_a_server_error,
    negative_data_rejection,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    app = create_app(load_tenant(EXAMPLE_TENANT).tenant, keys=KeySet.generate(seed=11), default_user="auth0|alice", admin=True)
    with serve_in_thread(app) as server:
        yield server


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_server_answers_every_request_the_spec_describes_within_the_spec(case: Case[Any], live: LiveServer) -> None:
    case.call_and_validate(base_url=live.url, checks=CHECKS)
