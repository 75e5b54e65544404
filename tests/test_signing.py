"""The signing adapter: keys, JWTs, sealed codes and tokens, and client assertions."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from claimsengine import (
    Accepted,
    Api,
    AuthorizationGrant,
    Client,
    ClientGrant,
    Issued,
    JwtHeader,
    PublicKey,
    RefreshGrant,
    SigningAlg,
    Tenant,
    TokenDialect,
    TokenFormat,
    TokenRequest,
    decide,
    validate_access_token,
)
from claimsengine.adapters.signing import AssertionVerifier, KeySet, Minter, replay_key
from claimsengine.engine import ASSERTION_CLOCK_SKEW, ASSERTION_MAX_LIFETIME

DOMAIN = "acme.auth0.com"
ISSUER = f"https://{DOMAIN}/"
RS_API = "https://rs.example.com"
PS_API = "https://ps.example.com"
HS_API = "https://hs.example.com"
HS_SECRET = "hs-api-signing-secret-0123456789abcdef"
NOW = 1_700_000_000
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


# ---------------------------------------------------------------------------------------
# Helpers and fixtures
# ---------------------------------------------------------------------------------------


def b64json(segment: str) -> dict[str, Any]:
    decoded = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    assert isinstance(decoded, dict)
    return decoded


def header_of(token: str) -> dict[str, Any]:
    return b64json(token.split(".")[0])


def counter_bytes() -> Callable[[int], bytes]:
    """A deterministic byte source: each call returns fresh, predictable bytes."""
    state = {"n": 0}

    def source(size: int) -> bytes:
        state["n"] += 1
        return state["n"].to_bytes(8, "big").rjust(size, b"\x00")[-size:]

    return source


def rsa_private() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@pytest.fixture(scope="module")
def client_key() -> rsa.RSAPrivateKey:
    return rsa_private()


@pytest.fixture(scope="module")
def tenant(client_key: rsa.RSAPrivateKey) -> Tenant:
    return Tenant(
        domain=DOMAIN,
        apis=(
            Api(identifier=RS_API, scopes=("read",)),
            Api(identifier=PS_API, signing_alg=SigningAlg.PS256, token_dialect=TokenDialect.RFC9068_PROFILE),
            Api(identifier=HS_API, signing_alg=SigningAlg.HS256, signing_secret=SecretStr(HS_SECRET)),
        ),
        clients=(
            Client(client_id="m2m", client_secrets=(SecretStr("s3cr3t"),), app_type="non_interactive"),
            Client(
                client_id="pkjwt",
                app_type="non_interactive",
                public_keys=(PublicKey(kid="client-key-1", alg="RS256", pem=public_pem(client_key)),),
            ),
        ),
        client_grants=(ClientGrant(client_id="pkjwt", audience=RS_API, scope=("read",)),),
    )


@pytest.fixture(scope="module")
def keys() -> KeySet:
    return KeySet.generate(seed=7)


@pytest.fixture
def minter(tenant: Tenant, keys: KeySet) -> Minter:
    return Minter(tenant, keys)


def issued(
    *,
    alg: SigningAlg = SigningAlg.RS256,
    typ: str = "JWT",
    api: str = RS_API,
    needs_jti: bool = False,
    fmt: TokenFormat = TokenFormat.JWT,
) -> Issued:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "m2m@clients",
        "aud": api,
        "iat": NOW,
        "exp": NOW + 86400,
        "scope": "read",
        "gty": "client-credentials",
        "azp": "m2m",
    }
    jwt_format = fmt is TokenFormat.JWT
    return Issued(
        format=fmt,
        issuer=ISSUER,
        audience=api,
        scope="read",
        claims=claims,
        header=JwtHeader(alg=alg, typ="at+jwt" if typ == "at+jwt" else "JWT") if jwt_format else None,
        signing_key=("api_secret" if alg is SigningAlg.HS256 else "tenant") if jwt_format else None,
        needs_jti=needs_jti,
        expires_in=86400,
        client_id="m2m",
        api=api if jwt_format else None,
        trace=(),
    )


def pyjwk(keys: KeySet, kid: str, algorithm: str = "RS256") -> jwt.PyJWK:
    (jwk,) = [k for k in keys.jwks()["keys"] if k["kid"] == kid]
    return jwt.PyJWK(jwk, algorithm=algorithm)


def code_grant() -> AuthorizationGrant:
    return AuthorizationGrant(
        client_id="web",
        user_id="auth0|alice",
        audience=RS_API,
        scope=("openid", "read"),
        redirect_uri="https://app.example.com/cb",
        code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        code_challenge_method="S256",
        nonce="n-0S6_WzA2Mj",
        domain=DOMAIN,
        issued_at=NOW,
        access_claims={"https://example.com/roles": ["admin"]},
        id_claims={"name": "Alice", "email_verified": True},
    )


def refresh_grant() -> RefreshGrant:
    return RefreshGrant(
        client_id="web",
        user_id="auth0|alice",
        audience=RS_API,
        scope=("openid", "offline_access", "read"),
        domain=DOMAIN,
        id_claims={"name": "Alice"},
    )


def flip(token: str, index: int) -> str:
    """``token`` with one base64url character changed."""
    char = token[index]
    replacement = "A" if char != "A" else "B"
    return token[:index] + replacement + token[index + 1 :]


def segment_positions(token: str) -> Iterator[int]:
    """One position in the middle of every non-empty segment."""
    start = 0
    for part in token.split("."):
        if part:
            yield start + len(part) // 2
        start += len(part) + 1


# ---------------------------------------------------------------------------------------
# JWT access tokens and ID tokens
# ---------------------------------------------------------------------------------------


def test_rs256_access_token_verifies_against_published_jwks(minter: Minter, keys: KeySet) -> None:
    token = minter.access_token(issued())
    assert header_of(token) == {"alg": "RS256", "typ": "JWT", "kid": keys.current_kid}
    claims = jwt.decode(token, key=pyjwk(keys, keys.current_kid), audience=RS_API, issuer=ISSUER, options={"verify_exp": False})
    assert claims == issued().claims
    assert "jti" not in claims


def test_ps256_access_token_uses_the_tenant_key(minter: Minter, keys: KeySet) -> None:
    token = minter.access_token(issued(alg=SigningAlg.PS256, api=PS_API))
    assert header_of(token) == {"alg": "PS256", "typ": "JWT", "kid": keys.current_kid}
    claims = jwt.decode(token, key=pyjwk(keys, keys.current_kid, "PS256"), audience=PS_API, options={"verify_exp": False})
    assert claims["aud"] == PS_API


def test_hs256_access_token_signed_with_the_api_secret_and_no_kid(minter: Minter) -> None:
    token = minter.access_token(issued(alg=SigningAlg.HS256, api=HS_API))
    assert header_of(token) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(token, key=HS_SECRET, algorithms=["HS256"], audience=HS_API, options={"verify_exp": False})
    assert claims["aud"] == HS_API
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, key="another-secret-of-sufficient-length!!", algorithms=["HS256"], audience=HS_API)


def test_rfc9068_token_has_typ_at_jwt_and_a_unique_jti(minter: Minter, keys: KeySet) -> None:
    decision = issued(alg=SigningAlg.PS256, api=PS_API, typ="at+jwt", needs_jti=True)
    first, second = minter.access_token(decision), minter.access_token(decision)
    assert header_of(first) == {"alg": "PS256", "typ": "at+jwt", "kid": keys.current_kid}
    key = pyjwk(keys, keys.current_kid, "PS256")
    jti_1 = jwt.decode(first, key=key, audience=PS_API, options={"verify_exp": False})["jti"]
    jti_2 = jwt.decode(second, key=key, audience=PS_API, options={"verify_exp": False})["jti"]
    assert isinstance(jti_1, str)
    assert len(jti_1) >= 16
    assert jti_1 != jti_2


def test_injected_randomness_makes_jti_and_sealed_values_deterministic(tenant: Tenant, keys: KeySet) -> None:
    decision = issued(alg=SigningAlg.PS256, api=PS_API, typ="at+jwt", needs_jti=True)
    one, two = Minter(tenant, keys, random_bytes=counter_bytes()), Minter(tenant, keys, random_bytes=counter_bytes())
    # PS256 signatures are randomised by design, so compare the signed content.
    assert minter_payload(one.access_token(decision)) == minter_payload(two.access_token(decision))
    assert one.code(code_grant()) == two.code(code_grant())
    assert one.access_token(issued(fmt=TokenFormat.OPAQUE)) == two.access_token(issued(fmt=TokenFormat.OPAQUE))


def minter_payload(token: str) -> dict[str, Any]:
    return b64json(token.split(".")[1])


def test_id_token_is_rs256_with_kid(minter: Minter, keys: KeySet) -> None:
    claims = {"iss": ISSUER, "sub": "auth0|alice", "aud": "web", "iat": NOW, "exp": NOW + 36000, "nonce": "abc"}
    token = minter.id_token(claims)
    assert header_of(token) == {"alg": "RS256", "typ": "JWT", "kid": keys.current_kid}
    assert jwt.decode(token, key=pyjwk(keys, keys.current_kid), audience="web", options={"verify_exp": False}) == claims


def test_signing_mismatches_are_refused(minter: Minter) -> None:
    with pytest.raises(ValueError, match="no signing secret"):
        minter.access_token(issued(alg=SigningAlg.HS256, api=RS_API))
    bad = issued().model_copy(update={"header": JwtHeader(alg=SigningAlg.HS256)})
    with pytest.raises(ValueError, match="tenant key"):
        minter.access_token(bad)


# ---------------------------------------------------------------------------------------
# Opaque access tokens, codes and refresh tokens
# ---------------------------------------------------------------------------------------


def test_opaque_token_has_auth0_shape_and_reads_back(minter: Minter) -> None:
    decision = issued(fmt=TokenFormat.OPAQUE)
    token = minter.access_token(decision)
    parts = token.split(".")
    assert len(parts) == 5
    assert parts[1] == ""  # dir: no encrypted key
    assert header_of(token) == {"alg": "dir", "enc": "A256GCM", "iss": ISSUER}
    assert minter.read_opaque(token) == decision.claims
    assert minter.read_code(token) is None
    assert minter.read_refresh_token(token) is None


def test_code_round_trip(minter: Minter) -> None:
    code = minter.code(code_grant())
    assert minter.read_code(code) == code_grant()
    assert "alice" not in code  # sealed, not merely encoded


def test_refresh_token_round_trip(minter: Minter) -> None:
    token = minter.refresh_token(refresh_grant())
    assert minter.read_refresh_token(token) == refresh_grant()


def test_sealed_kinds_do_not_mix(minter: Minter) -> None:
    code = minter.code(code_grant())
    refresh = minter.refresh_token(refresh_grant())
    assert minter.read_refresh_token(code) is None
    assert minter.read_opaque(code) is None
    assert minter.read_code(refresh) is None
    assert minter.read_opaque(refresh) is None
    assert header_of(code)["typ"] != header_of(refresh)["typ"]


def test_tampered_values_read_as_none(minter: Minter) -> None:
    code = minter.code(code_grant())
    refresh = minter.refresh_token(refresh_grant())
    opaque = minter.access_token(issued(fmt=TokenFormat.OPAQUE))
    for index in segment_positions(code):
        assert minter.read_code(flip(code, index)) is None
    for index in segment_positions(refresh):
        assert minter.read_refresh_token(flip(refresh, index)) is None
    for index in segment_positions(opaque):
        assert minter.read_opaque(flip(opaque, index)) is None
    # A header rewritten to claim another purpose breaks the authentication tag.
    forged_header = base64.urlsafe_b64encode(json.dumps({"alg": "dir", "enc": "A256GCM", "typ": "claimsengine.refresh"}).encode())
    forged = forged_header.decode().rstrip("=") + code[code.index(".") :]
    assert minter.read_refresh_token(forged) is None
    assert minter.read_code(code + "A") is None
    assert minter.read_code(code[:-2]) is None


def test_sealed_values_need_the_same_secret(tenant: Tenant, keys: KeySet, tmp_path: Path) -> None:
    code = Minter(tenant, keys).code(code_grant())
    assert Minter(tenant, KeySet.generate()).read_code(code) is None
    # Another worker, or a restart, with the same key file reads it.
    path = tmp_path / "keys.json"
    keys.save(path)
    assert Minter(tenant, KeySet.load(path)).read_code(code) == code_grant()


@given(st.text(max_size=300))
def test_garbage_never_raises(tenant: Tenant, keys: KeySet, text: str) -> None:
    minter = Minter(tenant, keys)
    assert minter.read_code(text) is None
    assert minter.read_refresh_token(text) is None
    assert minter.read_opaque(text) is None
    assert minter.verify_jwt(text, audience=RS_API) is None
    assert minter.verify_jwt(text, audience=HS_API) is None


@given(st.lists(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=60), min_size=3, max_size=6))
def test_jose_shaped_garbage_never_raises(tenant: Tenant, keys: KeySet, parts: list[str]) -> None:
    text = ".".join(parts)
    minter = Minter(tenant, keys)
    assert minter.read_code(text) is None
    assert minter.read_opaque(text) is None
    assert minter.verify_jwt(text, audience=RS_API) is None
    verified = AssertionVerifier(tenant).verify(text, client_id_hint="pkjwt", now=NOW)
    assert verified is None or not verified.signature_valid


# ---------------------------------------------------------------------------------------
# verify_jwt
# ---------------------------------------------------------------------------------------


def test_verify_jwt_returns_header_and_claims_the_engine_accepts(minter: Minter, tenant: Tenant, keys: KeySet) -> None:
    for decision in (issued(), issued(alg=SigningAlg.PS256, api=PS_API), issued(alg=SigningAlg.HS256, api=HS_API)):
        audience = decision.api
        assert audience is not None
        presented = minter.verify_jwt(minter.access_token(decision), audience=audience)
        assert presented is not None
        assert presented.claims == decision.claims
        assert presented.header["alg"] == SigningAlg(decision.header.alg if decision.header else "").value
        verdict = validate_access_token(presented, audience=audience, domain=DOMAIN, tenant=tenant, now=NOW + 60)
        assert isinstance(verdict, Accepted)


def test_verify_jwt_pins_the_api_algorithm(minter: Minter) -> None:
    rs_token = minter.access_token(issued())
    assert minter.verify_jwt(rs_token, audience=PS_API) is None  # PS256 API: RS256 not accepted
    assert minter.verify_jwt(rs_token, audience=HS_API) is None
    hs_token = minter.access_token(issued(alg=SigningAlg.HS256, api=HS_API))
    assert minter.verify_jwt(hs_token, audience=RS_API) is None


def test_verify_jwt_for_a_non_api_audience_accepts_only_the_tenant_key(minter: Minter, tenant: Tenant) -> None:
    userinfo = tenant.userinfo_audience
    assert minter.verify_jwt(minter.access_token(issued()), audience=userinfo) is not None
    assert minter.verify_jwt(minter.access_token(issued(alg=SigningAlg.PS256, api=PS_API)), audience=userinfo) is not None
    assert minter.verify_jwt(minter.access_token(issued(alg=SigningAlg.HS256, api=HS_API)), audience=userinfo) is None


def test_verify_jwt_rejects_alg_none(minter: Minter) -> None:
    # PyJWT's own "none" output, and the signature stripped from one of our tokens.
    unsigned = jwt.encode(dict(issued().claims), key="", algorithm="none")
    assert minter.verify_jwt(unsigned, audience=RS_API) is None
    valid = minter.access_token(issued())
    body = valid.split(".")[1]
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    assert minter.verify_jwt(f"{none_header}.{body}.", audience=RS_API) is None


def test_verify_jwt_rejects_hs_rs_confusion(minter: Minter, keys: KeySet) -> None:
    # The classic attack: HMAC-sign with the published RSA public key as the secret.
    public = pyjwk(keys, keys.current_kid).key
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "typ": "JWT", "kid": keys.current_kid}
    payload = json.dumps(issued().claims, separators=(",", ":")).encode()
    signing_input = (
        base64.urlsafe_b64encode(json.dumps(header).encode()).decode().rstrip("=")
        + "."
        + base64.urlsafe_b64encode(payload).decode().rstrip("=")
    )
    signature = base64.urlsafe_b64encode(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()).decode().rstrip("=")
    forged = f"{signing_input}.{signature}"
    assert minter.verify_jwt(forged, audience=RS_API) is None


def test_verify_jwt_rejects_foreign_keys_unknown_kids_and_tampering(tenant: Tenant, minter: Minter, keys: KeySet) -> None:
    foreign = Minter(tenant, KeySet.generate()).access_token(issued())
    assert minter.verify_jwt(foreign, audience=RS_API) is None
    token = minter.access_token(issued())
    for index in segment_positions(token):
        assert minter.verify_jwt(flip(token, index), audience=RS_API) is None
    # A token signed by our key but naming another kid is not ours.
    other_kid = jwt.encode(dict(issued().claims), private_key_of(keys), algorithm="RS256", headers={"kid": "not-ours"})
    assert minter.verify_jwt(other_kid, audience=RS_API) is None
    no_kid = jwt.encode(dict(issued().claims), private_key_of(keys), algorithm="RS256")
    assert "kid" not in header_of(no_kid)
    assert minter.verify_jwt(no_kid, audience=RS_API) is not None  # tried against every published key


def private_key_of(keys: KeySet) -> bytes:
    """The current private key, via the saved key file (the public API)."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "k.json"
        keys.save(path)
        document = json.loads(path.read_text())
    (jwk,) = [k for k in document["keys"] if k["status"] == "current"]
    key = jwt.PyJWK({k: v for k, v in jwk.items() if k != "status"}).key
    assert isinstance(key, rsa.RSAPrivateKey)
    return private_pem(key)


# ---------------------------------------------------------------------------------------
# KeySet: rotation, files, determinism, secrecy
# ---------------------------------------------------------------------------------------


def test_jwks_publishes_public_rs256_signing_keys_only(keys: KeySet) -> None:
    (jwk,) = keys.jwks()["keys"]
    assert set(jwk) == {"kty", "use", "alg", "kid", "n", "e"}
    assert (jwk["kty"], jwk["alg"], jwk["use"], jwk["kid"]) == ("RSA", "RS256", "sig", keys.current_kid)
    assert len(keys.secret) == 32


def test_rotation_publishes_next_first_and_keeps_previous(tenant: Tenant) -> None:
    keys = KeySet.generate()
    minter = Minter(tenant, keys)
    first_kid = keys.current_kid
    old_token = minter.access_token(issued())

    keys.rotate()
    next_kid = keys.next_kid
    assert next_kid is not None
    assert next_kid != first_kid
    assert [k["kid"] for k in keys.jwks()["keys"]] == [first_kid, next_kid]
    assert keys.current_kid == first_kid  # published, not yet signing
    assert header_of(minter.access_token(issued()))["kid"] == first_kid

    keys.rotate()
    assert keys.current_kid == next_kid
    assert keys.previous_kid == first_kid
    assert [k["kid"] for k in keys.jwks()["keys"]] == [next_kid, first_kid]
    new_token = minter.access_token(issued())
    assert header_of(new_token)["kid"] == next_kid
    # Outstanding tokens still verify with the published previous key.
    assert jwt.decode(old_token, key=pyjwk(keys, first_kid), audience=RS_API, options={"verify_exp": False})
    assert jwt.decode(new_token, key=pyjwk(keys, next_kid), audience=RS_API, options={"verify_exp": False})
    assert minter.verify_jwt(old_token, audience=RS_API) is not None
    assert minter.verify_jwt(new_token, audience=RS_API) is not None

    # A third rotation step publishes a newer key; a fourth retires the first key for good.
    keys.rotate()
    keys.rotate()
    assert first_kid not in [k["kid"] for k in keys.jwks()["keys"]]
    assert minter.verify_jwt(old_token, audience=RS_API) is None


def test_save_and_load_round_trip_with_mode_0600(tmp_path: Path) -> None:
    keys = KeySet.generate()
    keys.rotate()
    path = tmp_path / "tenant-keys.json"
    keys.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = KeySet.load(path)
    assert loaded.current_kid == keys.current_kid
    assert loaded.next_kid == keys.next_kid
    assert loaded.secret == keys.secret
    assert loaded.jwks() == keys.jwks()
    # Saving over an existing, looser file still leaves it private.
    path.chmod(0o644)
    loaded.save(str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["tenant-keys.json"]


def test_load_errors_do_not_quote_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"format": "claimsengine.keyset/1", "secret": "TOP-SECRET-VALUE", "keys": [{"d": "PRIVATE-PART"}]}')
    with pytest.raises(ValueError, match="not a valid claimsengine key file") as caught:
        KeySet.load(path)
    assert "TOP-SECRET" not in str(caught.value)
    assert "PRIVATE-PART" not in str(caught.value)
    assert caught.value.__cause__ is None
    path.write_text("TOP-SECRET-VALUE not json")
    with pytest.raises(ValueError, match="not a JSON key file") as caught:
        KeySet.load(path)
    assert "TOP-SECRET" not in str(caught.value)


def test_seeded_keys_are_deterministic_in_process_and_across_processes(keys: KeySet) -> None:
    again = KeySet.generate(seed=7)
    assert again.current_kid == keys.current_kid
    assert again.jwks() == keys.jwks()
    assert again.secret == keys.secret
    script = (
        "import json\n"
        "from claimsengine.adapters.signing import KeySet\n"
        "k = KeySet.generate(seed=7)\n"
        "print(json.dumps({'kid': k.current_kid, 'n': k.jwks()['keys'][0]['n'], 'secret': k.secret.hex()}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    remote = json.loads(out.stdout)
    assert remote == {"kid": keys.current_kid, "n": keys.jwks()["keys"][0]["n"], "secret": keys.secret.hex()}
    assert KeySet.generate(seed=8).current_kid != keys.current_kid


def test_seeded_rotation_is_deterministic_too() -> None:
    one, two = KeySet.generate(seed=11), KeySet.generate(seed=11)
    one.rotate()
    two.rotate()
    assert one.next_kid == two.next_kid
    assert one.next_kid != one.current_kid


def test_secrets_stay_out_of_reprs(tenant: Tenant, keys: KeySet, tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    keys.save(path)
    document = json.loads(path.read_text())
    private_parts = [jwk[name] for jwk in document["keys"] for name in ("d", "p", "q")]
    texts = [repr(keys), str(keys), repr(Minter(tenant, keys)), repr(AssertionVerifier(tenant))]
    for text in texts:
        assert document["secret"] not in text
        assert keys.secret.hex() not in text
        assert HS_SECRET not in text
        for part in private_parts:
            assert part[:16] not in text


# ---------------------------------------------------------------------------------------
# private_key_jwt assertions
# ---------------------------------------------------------------------------------------


def assertion(key: rsa.RSAPrivateKey, *, jti: str = "jti-1", alg: str = "RS256", kid: str | None = "client-key-1", **extra: Any) -> str:
    claims: dict[str, Any] = {"iss": "pkjwt", "sub": "pkjwt", "aud": ISSUER, "iat": NOW, "exp": NOW + 60, "jti": jti, **extra}
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims, private_pem(key), algorithm=alg, headers=headers)


def test_assertion_with_the_registered_key_is_valid(tenant: Tenant, client_key: rsa.RSAPrivateKey) -> None:
    token = assertion(client_key)
    result = AssertionVerifier(tenant).verify(token, client_id_hint="pkjwt", now=NOW)
    assert result is not None
    assert result.signature_valid
    assert result.key_alg == "RS256"
    assert result.alg == "RS256"
    assert result.kid == "client-key-1"
    assert result.size == len(token.encode())
    assert result.claims["jti"] == "jti-1"
    assert not result.jti_reused


def test_assertion_client_found_from_iss_without_hint(tenant: Tenant, client_key: rsa.RSAPrivateKey) -> None:
    result = AssertionVerifier(tenant).verify(assertion(client_key, kid=None), client_id_hint=None, now=NOW)
    assert result is not None
    assert result.signature_valid
    assert result.kid is None


def test_assertion_with_a_wrong_key_is_not_signature_valid(tenant: Tenant) -> None:
    verifier = AssertionVerifier(tenant)
    result = verifier.verify(assertion(rsa_private()), client_id_hint="pkjwt", now=NOW)
    assert result is not None
    assert not result.signature_valid
    assert result.key_alg is None
    assert not result.jti_reused


def test_assertion_for_a_client_without_keys_or_unknown(tenant: Tenant, client_key: rsa.RSAPrivateKey) -> None:
    verifier = AssertionVerifier(tenant)
    for hint in ("m2m", "nobody"):
        result = verifier.verify(assertion(client_key), client_id_hint=hint, now=NOW)
        assert result is not None
        assert not result.signature_valid


def test_assertion_hmac_signed_with_public_pem_never_verifies(tenant: Tenant, client_key: rsa.RSAPrivateKey) -> None:
    claims = {"iss": "pkjwt", "sub": "pkjwt", "aud": ISSUER, "exp": NOW + 60, "jti": "hs"}
    # PyJWT itself refuses PEM keys as HMAC secrets, so sign by hand.
    head = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    sig = hmac.new(public_pem(client_key).encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    token = f"{head}.{body}.{base64.urlsafe_b64encode(sig).decode().rstrip('=')}"
    result = AssertionVerifier(tenant).verify(token, client_id_hint="pkjwt", now=NOW)
    assert result is not None
    assert result.alg == "HS256"
    assert not result.signature_valid


def test_assertion_alg_is_reported_for_the_engine_to_judge(tenant: Tenant, client_key: rsa.RSAPrivateKey) -> None:
    result = AssertionVerifier(tenant).verify(assertion(client_key, alg="PS256"), client_id_hint="pkjwt", now=NOW)
    assert result is not None
    assert result.signature_valid
    assert (result.alg, result.key_alg) == ("PS256", "RS256")  # the engine rejects the mismatch


def test_the_verifier_reports_a_replay_key_and_records_nothing(tenant: Tenant, client_key: rsa.RSAPrivateKey) -> None:
    # The jti is recorded by the server in its store, and only once the engine judged the
    # assertion valid; the verifier only reports the key and how long it must be remembered.
    verifier = AssertionVerifier(tenant)
    token = assertion(client_key, jti="once")
    first = verifier.verify(token, client_id_hint="pkjwt", now=NOW)
    second = verifier.verify(token, client_id_hint="pkjwt", now=NOW + 1)
    assert first is not None
    assert first == second
    assert not second.jti_reused
    assert replay_key(first, now=NOW) == ("pkjwt\0once", NOW + 60 + ASSERTION_CLOCK_SKEW)
    no_exp = verifier.verify(assertion(client_key, jti="open", exp="soon"), client_id_hint="pkjwt", now=NOW)
    assert no_exp is not None
    assert replay_key(no_exp, now=NOW) == ("pkjwt\0open", NOW + ASSERTION_MAX_LIFETIME + ASSERTION_CLOCK_SKEW)


def test_no_replay_key_for_a_forged_signature_or_a_missing_jti(tenant: Tenant, client_key: rsa.RSAPrivateKey) -> None:
    verifier = AssertionVerifier(tenant)
    forged = verifier.verify(assertion(rsa_private(), jti="shared"), client_id_hint="pkjwt", now=NOW)
    assert forged is not None
    assert replay_key(forged, now=NOW) is None
    unnamed = verifier.verify(assertion(client_key, jti=7), client_id_hint="pkjwt", now=NOW)  # type: ignore[arg-type]
    assert unnamed is not None
    assert replay_key(unnamed, now=NOW) is None


@pytest.mark.parametrize("garbage", ["", "not a jwt", "a.b", "a.b.c", "....", "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln", "é.é.é"])
def test_garbage_assertion_is_none(tenant: Tenant, garbage: str) -> None:
    assert AssertionVerifier(tenant).verify(garbage, client_id_hint="pkjwt", now=NOW) is None


def test_private_key_jwt_end_to_end(tenant: Tenant, client_key: rsa.RSAPrivateKey, keys: KeySet) -> None:
    """Assertion → engine decision → minted token → verified by PyJWT and by the engine."""
    verifier = AssertionVerifier(tenant)
    token = assertion(client_key, jti="e2e")
    request = TokenRequest(
        domain=DOMAIN,
        grant_type="client_credentials",
        client_assertion_type=ASSERTION_TYPE,
        assertion=verifier.verify(token, client_id_hint=None, now=NOW),
        audience=RS_API,
    )
    decision = decide(request, tenant, now=NOW)
    assert isinstance(decision, Issued), decision
    minter = Minter(tenant, keys)
    access = minter.access_token(decision)
    claims = jwt.decode(access, key=pyjwk(keys, keys.current_kid), audience=RS_API, issuer=ISSUER, options={"verify_exp": False})
    assert claims["sub"] == "pkjwt@clients"
    presented = minter.verify_jwt(access, audience=RS_API)
    assert presented is not None
    assert isinstance(validate_access_token(presented, audience=RS_API, domain=DOMAIN, tenant=tenant, now=NOW + 1), Accepted)
    # Replaying the same assertion (the server's store says its jti was used) is refused by the engine.
    replayed = verifier.verify(token, client_id_hint=None, now=NOW + 1)
    assert replayed is not None
    replay = request.model_copy(update={"assertion": replayed.model_copy(update={"jti_reused": True})})
    assert not isinstance(decide(replay, tenant, now=NOW + 1), Issued)


def test_keyset_file_is_not_world_readable_even_with_a_loose_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "k.json"
        KeySet.generate().save(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# ---------------------------------------------------------------------------------------
# The minting fast path (issue 13) writes exactly what joserfc writes
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("alg", "api"), [("RS256", RS_API), ("HS256", HS_API)])
def test_a_jwt_is_byte_for_byte_what_joserfc_serializes(minter: Minter, keys: KeySet, alg: str, api: str) -> None:
    from joserfc import jws
    from joserfc.jwk import OctKey, RSAKey

    decision = issued(alg=SigningAlg(alg), api=api)
    token = minter.access_token(decision)
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    key: OctKey | RSAKey
    if alg == "RS256":
        header["kid"] = keys.current_kid
        key = keys._signer().key
    else:
        key = OctKey.import_key(HS_SECRET.encode())
    payload = json.dumps(dict(decision.claims), separators=(",", ":"), ensure_ascii=False).encode()
    assert token == jws.serialize_compact(header, payload, key, algorithms=[alg])


_JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_JSON = st.recursive(
    _JSON_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3), max_leaves=12
)


@given(st.dictionaries(st.text(), _JSON, max_size=8))
def test_claims_are_encoded_as_compact_json_writes_them(claims: dict[str, Any]) -> None:
    from collections import OrderedDict

    from claimsengine.adapters.signing import _json_bytes

    try:
        expected = json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no UTF-8 for it, either way
        with pytest.raises(UnicodeEncodeError):
            _json_bytes(claims)
        return
    assert _json_bytes(claims) == expected
    assert _json_bytes(OrderedDict(claims)) == expected  # not a plain dict: the encoder's own path


def test_a_ps256_jwt_verifies_with_joserfc(minter: Minter, keys: KeySet) -> None:
    from joserfc import jws

    token = minter.access_token(issued(alg=SigningAlg.PS256, api=PS_API))
    verified = jws.deserialize_compact(token, keys._signer().key, algorithms=["PS256"])
    assert json.loads(verified.payload)["aud"] == PS_API


def test_sealed_values_open_with_joserfc_and_joserfc_sealed_values_open_here(minter: Minter, keys: KeySet) -> None:
    from joserfc import jwe
    from joserfc.jwk import OctKey
    from joserfc.registry import HeaderParameter, is_str

    secret = OctKey.import_key(keys.secret)
    registry = jwe.JWERegistry(header_registry={"iss": HeaderParameter("Issuer", is_str)}, algorithms=["dir", "A256GCM"])
    token = minter.access_token(issued(fmt=TokenFormat.OPAQUE))
    opened = jwe.decrypt_compact(token, secret, registry=registry)
    assert opened.protected == {"alg": "dir", "enc": "A256GCM", "iss": ISSUER}
    assert opened.plaintext is not None
    assert json.loads(opened.plaintext) == minter.read_opaque(token)
    # A value sealed the way earlier versions sealed it (joserfc's encrypt_compact) still opens.
    earlier = jwe.encrypt_compact({"alg": "dir", "enc": "A256GCM", "iss": ISSUER}, b'{"sub":"x"}', secret, registry=registry)
    assert minter.read_opaque(earlier) == {"sub": "x"}
    code_header = {"alg": "dir", "enc": "A256GCM", "typ": "claimsengine.code"}
    code = jwe.encrypt_compact(code_header, code_grant().model_dump_json(), secret, registry=registry)
    assert minter.read_code(code) == code_grant()


def test_a_random_source_giving_the_wrong_length_is_refused(tenant: Tenant, keys: KeySet) -> None:
    short = Minter(tenant, keys, random_bytes=lambda size: b"\x00" * (size - 1))
    with pytest.raises(ValueError, match="wrong number of bytes"):
        short.code(code_grant())
