"""The process model, with real processes: exactly once across workers and replicas, atomic
reload, workers that die with their parent, and bounded slow clients.

Each test starts ``claimsengine serve`` (and, for replicas, a real ``redis-server``) on free
loopback ports and stops them by PID.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import secrets
import signal
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from claimsengine.adapters.server import EXAMPLE_TENANT
from tests.services import redis_server, serving

pytestmark = pytest.mark.slow

CANONICAL = "northwind.auth0.com"
ORDERS = "https://api.northwind.com/orders"
SPA = "nw-spa-0001"
CALLBACK = "https://shop.northwind.com/callback"
SERVICE = "nw-pkjwt-0001"
QUOTA = "nw-quota-0001"
QUOTA_SECRET = "example-quota-secret-not-for-production"
M2M_SECRET = "example-billing-secret-not-for-production"  # the bundled example tenant's
RACE = 32


@pytest.fixture(scope="module")
def client_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_tenant(path: Path, client_key: rsa.RSAPrivateKey, *, m2m_secret: str = "secret-one", lifetime: int = 86400) -> Path:
    """The example tenant plus a private_key_jwt service and a client with a quota of 10 tokens an hour."""
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_TENANT.read_text())
    pem = client_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    data["apis"][0]["token_lifetime"] = lifetime
    data["clients"][0]["client_secrets"] = [m2m_secret]
    data["clients"] += [
        {
            "client_id": SERVICE,
            "app_type": "non_interactive",
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "private_key_jwt",
            "public_keys": [{"kid": "svc-1", "alg": "RS256", "pem": pem}],
        },
        {
            "client_id": QUOTA,
            "app_type": "non_interactive",
            "client_secrets": [QUOTA_SECRET],
            "grant_types": ["client_credentials"],
            "token_quota": {"per_hour": 10},
        },
    ]
    data["client_grants"] += [{"client_id": c, "audience": ORDERS, "scope": ["read:orders"]} for c in (SERVICE, QUOTA)]
    path.write_text(yaml.safe_dump(data))
    return path


def assertion(key: rsa.RSAPrivateKey) -> str:
    now = int(time.time())
    claims = {"iss": SERVICE, "sub": SERVICE, "aud": f"https://{CANONICAL}/", "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "svc-1"})


def new_code(url: str) -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {"response_type": "code", "client_id": SPA, "redirect_uri": CALLBACK, "scope": "openid", "audience": ORDERS}
    query |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    with httpx.Client(timeout=30) as client:
        response = client.get(f"{url}/authorize", params=query)
    assert response.status_code == 302, response.text
    return parse_qs(urlsplit(response.headers["location"]).query)["code"][0], verifier


def fire(urls: list[str], body: dict[str, str], n: int = RACE) -> Counter[int]:
    """``n`` concurrent token requests, each on its own connection, spread over ``urls``."""
    barrier = threading.Barrier(n)

    def one(i: int) -> int:
        with httpx.Client(timeout=30) as client:
            barrier.wait()
            return client.post(f"{urls[i % len(urls)]}/oauth/token", data=body).status_code

    with ThreadPoolExecutor(n) as pool:
        return Counter(pool.map(one, range(n)))


def rotating_refresh_token(url: str) -> dict[str, str]:
    """A refresh request for a fresh SPA login (its refresh tokens rotate, leeway 0)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {"response_type": "code", "client_id": SPA, "redirect_uri": CALLBACK, "scope": "openid offline_access", "audience": ORDERS}
    query |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    with httpx.Client(timeout=30) as client:
        location = client.get(f"{url}/authorize", params=query).headers["location"]
        code = parse_qs(urlsplit(location).query)["code"][0]
        redeem = {"grant_type": "authorization_code", "client_id": SPA, "code": code, "code_verifier": verifier, "redirect_uri": CALLBACK}
        refresh_token = client.post(f"{url}/oauth/token", data=redeem).json()["refresh_token"]
    return {"grant_type": "refresh_token", "client_id": SPA, "refresh_token": refresh_token}


def exactly_once(urls: list[str], client_key: rsa.RSAPrivateKey) -> dict[str, dict[str, str]]:
    """One code, one assertion, one rotating refresh token and one quota of 10, each raced by 32
    requests over every url; returns the bodies to replay.

    Of the refreshes exactly one rotates; the others presented a token rotated away, so the
    family is revoked (reuse detection), the new token with it."""
    code, verifier = new_code(urls[0])
    redeem = {"grant_type": "authorization_code", "client_id": SPA, "code": code, "code_verifier": verifier, "redirect_uri": CALLBACK}
    signed = {
        "grant_type": "client_credentials",
        "audience": ORDERS,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion(client_key),
    }
    quota = {"grant_type": "client_credentials", "client_id": QUOTA, "client_secret": QUOTA_SECRET, "audience": ORDERS}
    refresh = rotating_refresh_token(urls[0])
    codes, assertions, quotas, refreshes = fire(urls, redeem), fire(urls, signed), fire(urls, quota), fire(urls, refresh)
    assert codes == {200: 1, 403: RACE - 1}, codes
    assert refreshes == {200: 1, 403: RACE - 1}, refreshes
    assert assertions == {200: 1, 401: RACE - 1}, assertions
    assert quotas == {200: 10, 429: RACE - 10}, quotas
    assert all(status < 500 for c in (codes, assertions, quotas, refreshes) for status in c)
    return {"code": redeem, "assertion": signed, "refresh token": refresh}


def assert_replays_refused(url: str, bodies: dict[str, dict[str, str]]) -> None:
    with httpx.Client(timeout=30) as client:
        for name, body in bodies.items():
            response = client.post(f"{url}/oauth/token", data=body)
            assert 400 <= response.status_code < 500, (name, response.text)


def test_two_workers_on_sqlite_redeem_each_code_assertion_and_refresh_token_exactly_once_even_after_a_restart(
    tmp_path: Path, client_key: rsa.RSAPrivateKey
) -> None:
    tenant = write_tenant(tmp_path / "tenant.yaml", client_key)
    options = ("--tenant", str(tenant), "--keys", str(tmp_path / "keys.json"), "--default-user", "auth0|alice")
    with serving(tmp_path, *options, workers=2) as (_, url, log):
        bodies = exactly_once([url], client_key)
        pids = set(re.findall(r"Started server process \[(\d+)\]", log.read_text()))
        assert len(pids) == 2
    # Default store with --keys: a SQLite file next to the key file, kept across the restart.
    assert "store: sqlite:///" in log.read_text()
    assert (tmp_path / "keys.json.state.sqlite3").exists()
    with serving(tmp_path, *options, workers=2, name="restart") as (_, url, _log):
        assert_replays_refused(url, bodies)


def test_two_servers_sharing_one_redis_redeem_each_code_assertion_and_refresh_token_exactly_once_even_after_a_restart(
    tmp_path: Path, client_key: rsa.RSAPrivateKey
) -> None:
    tenant = write_tenant(tmp_path / "tenant.yaml", client_key)
    with redis_server(tmp_path) as redis_url:
        options = ("--tenant", str(tenant), "--keys", str(tmp_path / "keys.json"), "--store", redis_url, "--default-user", "auth0|alice")
        with serving(tmp_path, *options, name="a") as (_, a, _la), serving(tmp_path, *options, name="b") as (_, b, _lb):
            bodies = exactly_once([a, b], client_key)
        with serving(tmp_path, *options, name="again") as (_, url, _log):
            assert_replays_refused(url, bodies)


def generation_of(response: httpx.Response) -> int:
    return int(response.headers["x-claimsengine-generation"])


def test_a_reload_under_load_switches_every_worker_to_one_generation_and_never_mixes(tmp_path: Path, client_key: rsa.RSAPrivateKey) -> None:
    tenant = write_tenant(tmp_path / "tenant.yaml", client_key, m2m_secret="secret-one", lifetime=1111)
    expected = {1: ("secret-one", 1111), 2: ("secret-two", 2222)}
    with serving(tmp_path, "--tenant", str(tenant), workers=2) as (proc, url, log):
        stop = threading.Event()
        seen: list[tuple[int, str, int, int | None]] = []
        failures: list[str] = []

        def load(secret: str) -> None:
            while not stop.is_set():
                try:
                    with httpx.Client(timeout=30) as client:  # a new connection: any worker may answer
                        body = {"grant_type": "client_credentials", "client_id": "nw-m2m-0001", "client_secret": secret, "audience": ORDERS}
                        r = client.post(f"{url}/oauth/token", data=body)
                    seen.append((generation_of(r), secret, r.status_code, r.json().get("expires_in")))
                except (httpx.HTTPError, KeyError, ValueError) as exc:
                    failures.append(repr(exc))

        threads = [threading.Thread(target=load, args=(s,)) for s in ("secret-one", "secret-two") for _ in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(1)
        write_tenant(tenant, client_key, m2m_secret="secret-two", lifetime=2222)
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: sum(1 for g, *_ in seen[-20:] if g == 2) == 20)
        # An invalid file: logged, and generation 2 keeps serving.
        tenant.write_text("clients: [{client_id: ''}]\n")
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload failed; generation 2 keeps serving" in log.read_text())
        time.sleep(1)
        stop.set()
        for thread in threads:
            thread.join()
    assert not failures, failures[:5]
    assert {g for g, *_ in seen} == {1, 2}
    for generation, secret, status, expires_in in seen:
        good_secret, lifetime = expected[generation]
        if secret == good_secret:
            assert (status, expires_in) == (200, lifetime), (generation, secret, status, expires_in)
        else:
            assert status == 401, (generation, secret, status)
    last = [g for g, *_ in seen[-20:]]
    assert set(last) == {2}


def wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_watch_reloads_a_single_process_without_forgetting_used_codes(tmp_path: Path, client_key: rsa.RSAPrivateKey) -> None:
    tenant = write_tenant(tmp_path / "tenant.yaml", client_key, lifetime=1111)
    with serving(tmp_path, "--tenant", str(tenant), "--watch", "--default-user", "auth0|alice") as (_, url, log):
        code, verifier = new_code(url)
        redeem = {"grant_type": "authorization_code", "client_id": SPA, "code": code, "code_verifier": verifier, "redirect_uri": CALLBACK}
        with httpx.Client(base_url=url, timeout=30) as client:
            first = client.post("/oauth/token", data=redeem)
            assert (first.status_code, generation_of(first)) == (200, 1)
            write_tenant(tenant, client_key, lifetime=2222)
            wait_for(lambda: "generation 2" in log.read_text())
            again = client.post("/oauth/token", data=redeem)
            assert (again.status_code, generation_of(again)) == (403, 2)  # the memory store survived the reload
            body = {"grant_type": "client_credentials", "client_id": "nw-m2m-0001", "client_secret": "secret-one", "audience": ORDERS}
            assert client.post("/oauth/token", data=body).json()["expires_in"] == 2222


def test_workers_die_with_a_killed_parent_and_the_port_is_free_for_a_restart(tmp_path: Path, client_key: rsa.RSAPrivateKey) -> None:
    with serving(tmp_path, workers=2) as (proc, url, log):
        pids = [int(p) for p in re.findall(r"Started server process \[(\d+)\]", log.read_text())]
        assert len(pids) == 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        wait_for(lambda: not any(alive(pid) for pid in pids))
    port = urlsplit(url).port
    assert port is not None
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))  # nobody holds the port any more


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_killed_worker_is_replaced_with_the_current_generation(tmp_path: Path, client_key: rsa.RSAPrivateKey) -> None:
    tenant = write_tenant(tmp_path / "tenant.yaml", client_key)
    with serving(tmp_path, "--tenant", str(tenant), workers=2) as (proc, url, log):
        write_tenant(tenant, client_key, m2m_secret="secret-two")
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: log.read_text().count("Application startup complete") >= 4)
        newest = [int(p) for p in re.findall(r"Started server process \[(\d+)\]", log.read_text())][-1]
        os.kill(newest, signal.SIGKILL)
        wait_for(lambda: "starting a replacement" in log.read_text() and log.read_text().count("Application startup complete") >= 5)
        for _ in range(8):
            with httpx.Client(timeout=30) as client:
                r = client.post(
                    f"{url}/oauth/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": "nw-m2m-0001",
                        "client_secret": "secret-two",
                        "audience": ORDERS,
                    },
                )
            assert (r.status_code, generation_of(r)) == (200, 2)


def test_a_slow_client_is_cut_off_after_the_read_timeout(tmp_path: Path) -> None:
    with serving(tmp_path, "--read-timeout", "1") as (_, url, _log):
        port = urlsplit(url).port
        assert port is not None
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            slow.sendall(b"POST /oauth/token HTTP/1.1\r\nHost: x\r\n")  # headers never finished
            started = time.monotonic()
            assert slow.recv(1024) == b""  # the server closed the connection
            assert time.monotonic() - started < 9
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow_body:
            slow_body.sendall(b"POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
            assert slow_body.recv(1024) == b""
        with httpx.Client(timeout=10) as client:  # everyone else is still served
            assert client.get(f"{url}/.well-known/jwks.json").status_code == 200


# ---------------------------------------------------------------------------------------
# Keys shared by the workers (issue 12): a rotation answered by one worker reaches all
# ---------------------------------------------------------------------------------------


def _answering_worker(client_port: int, server_port: int, workers: set[int]) -> int | None:
    """The worker process holding the server side of the loopback connection from ``client_port``."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.rsplit(":", 1)[1], 16) == server_port and int(remote.rsplit(":", 1)[1], 16) == client_port:
            inode = fields[9]
    for pid in workers:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


def _keys_seen_by_each_worker(port: int, workers: set[int]) -> dict[int, set[tuple[str, tuple[str, ...]]]]:
    """For each worker: the (token kid, JWKS kids) pairs it answered, over fresh connections
    opened one at a time until every worker has answered at least three (bounded)."""
    body = urlencode({"grant_type": "client_credentials", "client_id": "nw-m2m-0001", "client_secret": M2M_SECRET, "audience": ORDERS})
    seen: dict[int, list[tuple[str, tuple[str, ...]]]] = {}
    deadline = time.monotonic() + 20
    while min((len(seen.get(pid, ())) for pid in workers), default=0) < 3:
        assert time.monotonic() < deadline, f"not every worker answered: {sorted(seen)} of {sorted(workers)}"
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("POST", "/oauth/token", body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
            answer = connection.getresponse()
            assert answer.status == 200
            token = json.loads(answer.read())["access_token"]
            connection.request("GET", "/.well-known/jwks.json")
            jwks = json.loads(connection.getresponse().read())
            worker = _answering_worker(connection.sock.getsockname()[1], port, workers)
        finally:
            connection.close()
        assert worker is not None
        kid = jwt.get_unverified_header(token)["kid"]
        published = jwt.PyJWKSet.from_dict(jwks)
        claims = jwt.decode(token, published[kid].key, algorithms=["RS256"], audience=ORDERS)  # signed by a published key
        assert claims["azp"] == "nw-m2m-0001"
        seen.setdefault(worker, []).append((kid, tuple(k["kid"] for k in jwks["keys"])))
    return {pid: set(pairs) for pid, pairs in seen.items()}


def test_a_key_rotation_answered_by_one_worker_reaches_every_worker(tmp_path: Path) -> None:
    with serving(tmp_path, "--admin", workers=2) as (_, url, log):
        text = log.read_text()
        found = re.search(r"admin token: (\S+)", text)
        assert found is not None
        admin = {"Authorization": f"Bearer {found.group(1)}"}
        workers = {int(p) for p in re.findall(r"Started server process \[(\d+)\]", text)}
        port = urlsplit(url).port
        assert len(workers) == 2
        assert port is not None
        first = _keys_seen_by_each_worker(port, workers)
        (k1,) = {kid for pairs in first.values() for kid, _ in pairs}
        assert all(pairs == {(k1, (k1,))} for pairs in first.values()), first
        with httpx.Client(timeout=30) as client:
            published = client.post(f"{url}/admin/rotate-keys", headers=admin).json()
        k2 = published["jwks"]["keys"][1]["kid"]
        assert (published["current_kid"], [k["kid"] for k in published["jwks"]["keys"]]) == (k1, [k1, k2])
        # Whichever worker rotated: every worker now publishes the next key and still signs with k1.
        assert all(pairs == {(k1, (k1, k2))} for pairs in _keys_seen_by_each_worker(port, workers).values())
        with httpx.Client(timeout=30) as client:
            assert client.post(f"{url}/admin/rotate-keys", headers=admin).json()["current_kid"] == k2
        # And every worker signs with k2, publishing k1 as previous.
        assert all(pairs == {(k2, (k2, k1))} for pairs in _keys_seen_by_each_worker(port, workers).values())


def test_a_rotation_is_saved_in_the_key_file_and_survives_a_restart(tmp_path: Path) -> None:
    options = ("--admin", "--keys", str(tmp_path / "keys.json"))
    with serving(tmp_path, *options) as (_, url, log), httpx.Client(timeout=30) as client:
        found = re.search(r"admin token: (\S+)", log.read_text())
        assert found is not None
        admin = {"Authorization": f"Bearer {found.group(1)}"}
        first = client.post(f"{url}/admin/rotate-keys", headers=admin).json()
        rotated = client.post(f"{url}/admin/rotate-keys", headers=admin).json()
    assert rotated["current_kid"] != first["current_kid"]
    with serving(tmp_path, *options, name="restart") as (_, url, _log), httpx.Client(timeout=30) as client:
        jwks = client.get(f"{url}/.well-known/jwks.json").json()
    assert [k["kid"] for k in jwks["keys"]] == [k["kid"] for k in rotated["jwks"]["keys"]]
    assert jwks["keys"][0]["kid"] == rotated["current_kid"]
