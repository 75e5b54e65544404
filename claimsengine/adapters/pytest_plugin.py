"""pytest fixtures for testing code that talks to Auth0, against a fake tenant.

Registered as the ``claimsengine`` pytest11 entry point. Importing this module imports
nothing but pytest: the server's dependencies (starlette, uvicorn, httpx, joserfc) load
only when a test asks for one of the fixtures below, so projects that installed
claimsengine without the ``server`` extra keep a working pytest.

Fixtures (see docs/testing.md):

* ``auth0_tenant``: the tenant; the bundled example unless overridden by your own fixture
  or by ``@pytest.mark.auth0_tenant(path=..., tenant=..., default_user=..., ...)``;
* ``auth0_clock``: a frozen, controllable clock (``.now``, ``.advance(s)``, ``.set(t)``);
* ``auth0_keys``: the signing keys (generated once per session, fresh copy per test);
* ``auth0_app``: the ASGI app; ``auth0_client``/``auth0_async_client``: in-process clients;
* ``auth0_server``: a live server on an ephemeral loopback port;
* ``auth0_tls_server``: the same over https, its CA trusted by requests, httpx and ``ssl``.
* ``auth0_devices``: answers device-flow user codes as their users would
  (``.approve(user_code, user_id=None)``, ``.deny(user_code)``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import httpx
    from starlette.applications import Starlette

    from claimsengine import Tenant
    from claimsengine.adapters.server import LiveServer
    from claimsengine.adapters.signing import KeySet

MARKER = "auth0_tenant"
# Options of the tenant: where it comes from and how a Deploy CLI export is read.
TENANT_OPTIONS = ("path", "tenant", "domain", "keywords", "keyword_file", "credentials", "deploy_config", "users", "user_assignments")
APP_OPTIONS = ("default_user", "auto_consent", "admin", "seed", "rule_header", "login_page")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(path=None, *, tenant=None, domain=None, keywords=None, keyword_file=None, credentials=None, "
        "deploy_config=None, users=None, user_assignments=None, default_user=None, auto_consent=True, admin=False, seed=None, "
        "rule_header=True): "
        "the tenant (a file or a Tenant), how to read it, and options of the claimsengine fake Auth0 fixtures",
    )


class Auth0Clock:
    """A frozen clock the fake tenant reads. Starts at the wall-clock second it was made."""

    def __init__(self, now: int | None = None) -> None:
        self.now: int = int(time.time()) if now is None else int(now)

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> int:
        """Move the clock forward (or back, with a negative value); returns the new time."""
        self.now += int(seconds)
        return self.now

    def set(self, timestamp: float) -> None:
        """Jump to ``timestamp`` (Unix seconds)."""
        self.now = int(timestamp)


def _marker_kwargs(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        return {}
    kwargs = dict(marker.kwargs)
    if len(marker.args) > 1:
        pytest.fail(f"@pytest.mark.{MARKER} takes one positional argument (the path), got {len(marker.args)}", pytrace=False)
    if marker.args:
        kwargs.setdefault("path", marker.args[0])
    unknown = sorted(set(kwargs) - {*TENANT_OPTIONS, *APP_OPTIONS})
    if unknown:
        known = ", ".join((*TENANT_OPTIONS, *APP_OPTIONS))
        pytest.fail(f"@pytest.mark.{MARKER}: unknown option(s) {', '.join(unknown)} (known: {known})", pytrace=False)
    return kwargs


@pytest.fixture
def auth0_tenant(request: pytest.FixtureRequest) -> Tenant:
    """The tenant to serve: ``@pytest.mark.auth0_tenant(path=...|tenant=...)`` or the example."""
    from claimsengine import Tenant
    from claimsengine.adapters.loader import load_tenant

    options = _marker_kwargs(request)
    given = options.get("tenant")
    if given is not None:
        if not isinstance(given, Tenant):
            raise TypeError("@pytest.mark.auth0_tenant(tenant=...) expects a claimsengine.Tenant")
        return _with_users(request, given, options)
    path = options.get("path")
    if path is None:
        path = Path(__file__).resolve().parent.parent / "examples" / "northwind.yaml"
    root = Path(str(request.config.rootpath))

    def resolved(value: Any) -> Path | None:
        # Files are relative to the pytest root, like the marker's path.
        return None if value is None else (Path(value) if Path(value).is_absolute() else root / value)

    domain, keywords = options.get("domain"), dict(options.get("keywords") or {})
    if options.get("deploy_config") is not None:
        from claimsengine.adapters.loader import read_deploy_config

        deploy = read_deploy_config(resolved(options["deploy_config"]) or "")
        domain = domain or deploy.domain
        keywords = {**deploy.keywords, **keywords}
    tenant = load_tenant(
        resolved(path) or path,
        domain=domain,
        keywords=keywords,
        keyword_file=resolved(options.get("keyword_file")),
        credentials=resolved(options.get("credentials")),
    ).tenant
    return _with_users(request, tenant, options)


def _with_users(request: pytest.FixtureRequest, tenant: Tenant, options: dict[str, Any]) -> Tenant:
    """``users=`` (Auth0's bulk user import JSON) and ``user_assignments=`` (the companion file),
    relative to the pytest root, added to the tenant."""
    users, assignments = options.get("users"), options.get("user_assignments")
    if users is None and assignments is None:
        return tenant
    from claimsengine.adapters.users import with_users

    root = Path(str(request.config.rootpath))

    def rooted(value: Any) -> Path | None:
        return None if value is None else (Path(value) if Path(value).is_absolute() else root / value)

    return with_users(tenant, rooted(users), rooted(assignments))


@pytest.fixture
def auth0_clock() -> Auth0Clock:
    """A frozen clock for the fake tenant; tokens are minted at ``auth0_clock.now``."""
    return Auth0Clock()


@pytest.fixture(scope="session")
def _auth0_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Key generation is the slow part; do it once and give each test its own copy.
    from claimsengine.adapters.signing import KeySet

    path = tmp_path_factory.mktemp("claimsengine-keys") / "keys.json"
    KeySet.generate().save(path)
    return path


@pytest.fixture
def auth0_keys(_auth0_key_file: Path) -> KeySet:
    """The fake tenant's signing keys (a private copy: rotating them affects this test only)."""
    from claimsengine.adapters.signing import KeySet

    return KeySet.load(_auth0_key_file)


@pytest.fixture
def auth0_app(request: pytest.FixtureRequest, auth0_tenant: Tenant, auth0_clock: Auth0Clock, auth0_keys: KeySet) -> Starlette:
    """The fake tenant as an ASGI app (state: ``auth0_app.state.auth0``)."""
    from claimsengine.adapters.server import create_app

    options = {k: v for k, v in _marker_kwargs(request).items() if k in APP_OPTIONS}
    return create_app(auth0_tenant, keys=auth0_keys, clock=auth0_clock, **options)


def _base_url(app: Starlette) -> str:
    tenant: Tenant = app.state.auth0.tenant
    return f"https://{tenant.domain}"


@pytest.fixture
def auth0_client(auth0_app: Starlette) -> Iterator[httpx.Client]:
    """A synchronous in-process ``httpx.Client``; requests come through the canonical domain."""
    from claimsengine.adapters.server import asgi_client

    with asgi_client(auth0_app, base_url=_base_url(auth0_app)) as client:
        yield client


@pytest.fixture
def auth0_async_client(auth0_app: Starlette) -> Iterator[httpx.AsyncClient]:
    """An ``httpx.AsyncClient`` over the ASGI app (use it from async tests)."""
    import asyncio

    import httpx

    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=auth0_app), base_url=_base_url(auth0_app))
    try:
        yield client
    finally:
        if not client.is_closed:
            asyncio.run(client.aclose())


@pytest.fixture
def auth0_server(auth0_app: Starlette) -> Iterator[LiveServer]:
    """The fake tenant on a live loopback port (``.url``, ``.domain``, ``.issuer``, ``.tenant``, ``.keys``)."""
    from claimsengine.adapters.server import serve_in_thread

    with serve_in_thread(auth0_app) as server:
        yield server


@pytest.fixture
def auth0_tls_server(auth0_app: Starlette, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveServer]:
    """The fake tenant over https on a loopback port, its throwaway CA trusted for the test:
    ``REQUESTS_CA_BUNDLE`` (requests, auth0-python) and ``SSL_CERT_FILE`` (httpx,
    auth0-api-python) name ``.ca_path``; ``.ssl_context()`` is an ``ssl.SSLContext`` for the rest."""
    from claimsengine.adapters.server import serve_in_thread

    with serve_in_thread(auth0_app, tls=True) as server:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_path))
        monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_path))
        yield server


class DeviceAnswerError(AssertionError):
    """A user code could not be answered: unknown, answered before, or the approval refused."""


class Auth0Devices:
    """Answers device-flow user codes on the fake tenant, as the activation page would."""

    def __init__(self, app: Starlette) -> None:
        self._app = app

    def approve(self, user_code: str, user_id: str | None = None) -> None:
        """Approve ``user_code`` as ``user_id`` (default: the tenant's default user)."""
        self._answer(user_code, user_id, approve=True)

    def deny(self, user_code: str) -> None:
        """Deny ``user_code``: the device's next poll gets ``access_denied``."""
        self._answer(user_code, None, approve=False)

    def _answer(self, user_code: str, user_id: str | None, *, approve: bool) -> None:
        from claimsengine import Rejected

        outcome = self._app.state.auth0.answer_device(user_code, user_id, approve=approve)
        if isinstance(outcome, Rejected):
            raise DeviceAnswerError(f"the approval was refused: {outcome.error} {outcome.error_description}")
        if outcome in ("unknown", "answered"):
            raise DeviceAnswerError(f"user code {user_code!r} is {outcome}")


@pytest.fixture
def auth0_devices(auth0_app: Starlette) -> Auth0Devices:
    """Approve or deny device-flow user codes of ``auth0_app`` (also behind ``auth0_server``)."""
    return Auth0Devices(auth0_app)
