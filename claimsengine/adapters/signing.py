"""Keys and tokens: the cryptography around the engine's decisions.

The engine says *what* to issue (an :class:`~claimsengine.model.Issued`); this adapter turns
that into the bytes a client receives, and turns bytes a client presents back into values the
engine can judge. All JOSE work goes through ``joserfc``; keys come from ``cryptography``
(or, for reproducible test keys, ``pycryptodome``).

* :class:`KeySet` holds the tenant's RSA signing keys (current, next and previous, for
  rotation) and a 32-byte secret. Keys are parsed once, when the set is generated or loaded.
* :class:`Minter` signs access and ID tokens, and seals codes, refresh tokens and opaque
  access tokens. Sealed values are compact JWEs (``dir`` + ``A256GCM``) under the secret,
  so any worker holding the same key file can read them, also after a restart.
* :class:`AssertionVerifier` checks the signature of a ``private_key_jwt`` client assertion
  and remembers its ``jti``. Judging the claims is the engine's job.

Nothing here prints, logs or puts key material into an exception or a ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc import jwe, jws
from joserfc.errors import JoseError, SecurityWarning, UnsupportedAlgorithmError
from joserfc.jwa import GCMEncModel
from joserfc.jwe import JWERegistry
from joserfc.jwk import OctKey, RSAKey
from joserfc.jws import JWSRegistry
from joserfc.registry import HeaderParameter, is_str
from pydantic import BaseModel, ValidationError

from claimsengine.engine import ASSERTION_CLOCK_SKEW, ASSERTION_MAX_LIFETIME
from claimsengine.model import (
    AuthorizationGrant,
    ClientAssertion,
    DeviceGrant,
    Issued,
    MfaGrant,
    PresentedToken,
    RefreshGrant,
    SigningAlg,
    Tenant,
    TokenFormat,
)

__all__ = ["AssertionVerifier", "KeySet", "Minter", "replay_key", "token_hash"]

RSA_BITS: Final = 2048
SECRET_BYTES: Final = 32
# Purpose markers in the protected header of sealed values. An opaque access token carries
# no "typ" (its header is exactly Auth0's: alg, enc, iss), so the three kinds never mix.
CODE_TYP: Final = "claimsengine.code"
REFRESH_TYP: Final = "claimsengine.refresh"
DEVICE_TYP: Final = "claimsengine.device"
MFA_TYP: Final = "claimsengine.mfa"
_MINTED_TYPS: Final = frozenset({CODE_TYP, REFRESH_TYP, DEVICE_TYP, MFA_TYP})
# Anything longer is not something we minted; refuse before parsing.
MAX_TOKEN_CHARS: Final = 65536
KEYSET_FORMAT: Final = "claimsengine.keyset/1"

_ACCESS_ALGS: Final = tuple(alg.value for alg in SigningAlg)
_TENANT_ALGS: Final = (SigningAlg.RS256.value, SigningAlg.PS256.value)
# RSA algorithms a client assertion may use. HMAC and "none" are never tried.
_ASSERTION_ALGS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")

# Registries are built once. Signing uses only the three access-token algorithms;
# verification pins exactly one algorithm per call.
_SIGN_REGISTRY: Final = JWSRegistry(algorithms=list(_ACCESS_ALGS))
_PINNED: Final = {alg: JWSRegistry(algorithms=[alg], strict_check_header=False) for alg in _ACCESS_ALGS}
_ASSERTION_REGISTRY: Final = {alg: JWSRegistry(algorithms=[alg], strict_check_header=False) for alg in _ASSERTION_ALGS}
_PARSE_REGISTRY: Final = JWSRegistry(strict_check_header=False)

_M = TypeVar("_M", bound=BaseModel)

RandomBytes = Callable[[int], bytes]


# ---------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _SigningKey:
    """One RSA key pair, parsed once, with its kid and public JWK."""

    kid: str
    key: RSAKey
    private: rsa.RSAPrivateKey  # the same key, as cryptography signs with it

    @classmethod
    def from_private(cls, private: rsa.RSAPrivateKey) -> _SigningKey:
        if private.key_size < RSA_BITS:
            raise ValueError(f"tenant signing keys must be at least {RSA_BITS} bits")
        key = RSAKey.import_key(private)
        kid = key.thumbprint()  # RFC 7638
        return cls(kid=kid, key=RSAKey.import_key(private, parameters={"kid": kid, "use": "sig"}), private=private)

    def public_jwk(self) -> dict[str, Any]:
        public = self.key.as_dict(private=False)
        return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid, "n": public["n"], "e": public["e"]}

    def __repr__(self) -> str:
        return f"_SigningKey(kid={self.kid!r})"


@dataclass(frozen=True, slots=True)
class _KeyState:
    """An immutable snapshot; rotation swaps the whole snapshot, so readers never lock."""

    current: _SigningKey
    next: _SigningKey | None = None
    previous: _SigningKey | None = None

    def published(self) -> tuple[_SigningKey, ...]:
        return tuple(k for k in (self.current, self.next, self.previous) if k is not None)


def _seeded_private_key(seed: int, index: int) -> rsa.RSAPrivateKey:
    """A 2048-bit RSA key that depends only on (seed, index): for tests and demos."""
    try:
        from Crypto.Hash import SHAKE256
        from Crypto.PublicKey import RSA
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise RuntimeError("KeySet.generate(seed=...) needs pycryptodome>=3.20 (pip install pycryptodome)") from error
    stream = SHAKE256.new(f"claimsengine/keyset/rsa/{seed}/{index}".encode())
    generated = RSA.generate(RSA_BITS, randfunc=stream.read)
    der = generated.export_key(format="DER", pkcs=8)
    private = serialization.load_der_private_key(der, password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    return private


def _seeded_secret(seed: int) -> bytes:
    from Crypto.Hash import SHAKE256

    return bytes(SHAKE256.new(f"claimsengine/keyset/secret/{seed}".encode()).read(SECRET_BYTES))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class KeySet:
    """The tenant's signing keys (RS256 and PS256 share the RSA keys) and the sealing secret.

    Build with :meth:`generate` or :meth:`load`. Reads are lock-free (an immutable snapshot);
    :meth:`rotate` swaps the snapshot under a lock.
    """

    __slots__ = ("_generation", "_lock", "_secret", "_seed", "_state")

    def __init__(self, state: _KeyState, secret: bytes, *, seed: int | None = None, generation: int = 1) -> None:
        if len(secret) != SECRET_BYTES:
            raise ValueError(f"the sealing secret must be {SECRET_BYTES} bytes")
        self._state = state
        self._secret = bytes(secret)
        self._seed = seed
        self._generation = generation
        self._lock = threading.Lock()

    # -- construction ------------------------------------------------------------------

    @classmethod
    def generate(cls, *, seed: int | None = None) -> KeySet:
        """Fresh keys; with ``seed``, the same keys (kid, modulus, secret) in every process."""
        if seed is None:
            private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
            return cls(_KeyState(current=_SigningKey.from_private(private)), secrets.token_bytes(SECRET_BYTES))
        current = _SigningKey.from_private(_seeded_private_key(seed, 0))
        return cls(_KeyState(current=current), _seeded_secret(seed), seed=seed, generation=1)

    @classmethod
    def load(cls, path: str | Path) -> KeySet:
        """Read a key file written by :meth:`save`. Errors never quote the file's content."""
        try:
            raw = json.loads(Path(path).read_bytes())
        except (ValueError, UnicodeDecodeError):
            raise ValueError(f"{path}: not a JSON key file") from None
        try:
            return cls._from_document(raw)
        except (JoseError, ValueError, TypeError, KeyError, binascii.Error):
            raise ValueError(f"{path}: not a valid claimsengine key file") from None

    @classmethod
    def _from_document(cls, raw: Any) -> KeySet:
        if not isinstance(raw, dict) or raw.get("format") != KEYSET_FORMAT:
            raise ValueError("unknown format")
        slots: dict[str, _SigningKey] = {}
        for jwk in raw["keys"]:
            status = jwk["status"]
            if status not in ("current", "next", "previous") or status in slots:
                raise ValueError("bad key status")
            fields = {k: v for k, v in jwk.items() if k not in ("status", "kid", "alg", "use")}
            private = RSAKey.import_key(fields).private_key
            if private is None:
                raise ValueError("a key has no private part")
            slots[status] = _SigningKey.from_private(private)
        state = _KeyState(current=slots["current"], next=slots.get("next"), previous=slots.get("previous"))
        seed = raw.get("seed")
        generation = raw.get("generation", 1)
        if not (seed is None or type(seed) is int) or type(generation) is not int:
            raise ValueError("bad seed")
        return cls(state, _unb64(raw["secret"]), seed=seed, generation=generation)

    def save(self, path: str | Path) -> None:
        """Write the private keys and the secret to ``path`` (mode 0600, replaced atomically)."""
        state = self._state
        keys = []
        for status, key in (("current", state.current), ("next", state.next), ("previous", state.previous)):
            if key is not None:
                keys.append({**key.key.as_dict(private=True), "kid": key.kid, "alg": "RS256", "use": "sig", "status": status})
        document = {
            "format": KEYSET_FORMAT,
            "keys": keys,
            "secret": _b64(self._secret),
            "seed": self._seed,
            "generation": self._generation,
        }
        target = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=".keyset-", dir=target.parent)  # created 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(document, handle, indent=2)
                handle.write("\n")
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- reading -----------------------------------------------------------------------

    @property
    def secret(self) -> bytes:
        """The 32-byte A256GCM key that seals codes, refresh tokens and opaque tokens."""
        return self._secret

    @property
    def current_kid(self) -> str:
        return self._state.current.kid

    @property
    def next_kid(self) -> str | None:
        """The key published ahead of use by the first :meth:`rotate`, if any."""
        key = self._state.next
        return key.kid if key is not None else None

    @property
    def previous_kid(self) -> str | None:
        """The key retired by the last completed rotation, still published, if any."""
        key = self._state.previous
        return key.kid if key is not None else None

    def jwks(self) -> dict[str, Any]:
        """The public JWKS: current, then next (if rotating), then previous (if any)."""
        return {"keys": [key.public_jwk() for key in self._state.published()]}

    def _signer(self) -> _SigningKey:
        return self._state.current

    def _verifiers(self, kid: object) -> tuple[RSAKey, ...]:
        """Published keys that may have signed a token with header ``kid``."""
        published = self._state.published()
        if kid is None:
            return tuple(k.key for k in published)
        return tuple(k.key for k in published if k.kid == kid)

    # -- rotation ----------------------------------------------------------------------

    def rotate(self) -> None:
        """Advance the rotation by one step.

        First call: create a *next* key, published by :meth:`jwks` but not yet signing.
        Second call: the next key becomes current; the old current stays published as
        *previous* (so tokens it signed still verify); an older previous is dropped.
        """
        with self._lock:
            state = self._state
            if state.next is None:
                if self._seed is None:
                    private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
                else:
                    private = _seeded_private_key(self._seed, self._generation)
                self._generation += 1
                self._state = _KeyState(current=state.current, next=_SigningKey.from_private(private), previous=state.previous)
            else:
                self._state = _KeyState(current=state.next, next=None, previous=state.current)

    def __repr__(self) -> str:
        state = self._state
        return f"KeySet(current_kid={state.current.kid!r}, next_kid={self.next_kid!r}, previous_kid={self.previous_kid!r})"


# ---------------------------------------------------------------------------------------
# Minting
# ---------------------------------------------------------------------------------------


class _SealRegistry(JWERegistry):
    """dir + A256GCM only, with "iss" allowed in the protected header (R48): for opening."""

    def __init__(self) -> None:
        super().__init__(header_registry={"iss": HeaderParameter("Issuer", is_str)}, algorithms=["dir", "A256GCM"])
        self._enc = GCMEncModel(256)

    def get_enc(self, name: str) -> GCMEncModel:
        if name != "A256GCM":
            raise UnsupportedAlgorithmError(f"Algorithm of '{name}' is not allowed")
        return self._enc


_SEAL_REGISTRY: Final = _SealRegistry()
GCM_IV_BYTES: Final = 12  # 96-bit IVs, as RFC 7518 section 5.3 requires for A256GCM
GCM_TAG_BYTES: Final = 16


# json.dumps builds a new encoder for any non-default argument: build this one once.
_COMPACT_JSON: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
# JSONEncoder.encode builds its C encoder again on every call; this is that encoder, built once,
# with the same settings (compact, UTF-8 text, NaN allowed, keys in order). No circularity check:
# claims are JSON values the engine built, never a structure that contains itself.
_C_ENCODER: Final = (
    json.encoder.c_make_encoder(None, _COMPACT_JSON.default, json.encoder.encode_basestring, None, ":", ",", False, False, True)  # type: ignore[attr-defined]
    if json.encoder.c_make_encoder is not None  # type: ignore[attr-defined]
    else None
)


def _json_bytes(value: Mapping[str, Any]) -> bytes:
    """``value`` as compact JSON in UTF-8, exactly as ``_COMPACT_JSON.encode`` writes it."""
    if _C_ENCODER is not None and type(value) is dict:
        return "".join(_C_ENCODER(value, 0)).encode("utf-8")
    return _COMPACT_JSON.encode(value).encode("utf-8")


_URLSAFE: Final = bytes.maketrans(b"+/", b"-_")


def _b64_bytes(data: bytes) -> bytes:
    """base64url without padding (``base64.urlsafe_b64encode``, inlined)."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")


def _header_segment(header: Mapping[str, Any]) -> bytes:
    """A JOSE protected header, encoded as joserfc encodes it (ASCII JSON, base64url)."""
    return _b64_bytes(json.dumps(header, ensure_ascii=True, separators=(",", ":")).encode("ascii"))


def _hmac_keys(tenant: Tenant) -> dict[str, OctKey]:
    """Each HS256-capable API's signing secret as a parsed key, built once."""
    keys: dict[str, OctKey] = {}
    for identifier, api in tenant.index.apis.items():
        if api.signing_secret is None:
            continue
        secret = api.signing_secret.get_secret_value().encode("utf-8")
        if not secret:
            continue
        with warnings.catch_warnings():
            # Auth0 enforces its own minimum length; a short secret in a test tenant is allowed.
            warnings.simplefilter("ignore", SecurityWarning)
            keys[identifier] = OctKey.import_key(secret)
    return keys


def token_hash(value: str) -> str:
    """``at_hash`` / ``c_hash`` of an RS256 ID token: the left half of the SHA-256 of the ASCII
    value, base64url without padding (OpenID Connect Core 3.1.3.6, 3.3.2.11)."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


class Minter:
    """Turns decisions into tokens, and reads back the tokens it sealed.

    ``random_bytes`` supplies jti values and JWE IVs; inject a deterministic source in tests
    only (reusing an IV under one key breaks AES-GCM).
    """

    def __init__(self, tenant: Tenant, keys: KeySet, *, random_bytes: RandomBytes = os.urandom) -> None:
        self._tenant = tenant
        self._keys = keys
        self._random_bytes = random_bytes
        self._hmac = _hmac_keys(tenant)
        self._seal_key = OctKey.import_key(keys.secret)
        # Minting is the hot path (issue 13): the AES-GCM key is set up once, and the protected
        # headers of each kind of sealed value and JWT are encoded once. The output is exactly
        # the compact JWE (dir + A256GCM) and JWS joserfc writes, so joserfc (and any JOSE
        # library) opens and verifies it, and tokens minted before open here.
        self._aead = AESGCM(keys.secret)
        self._segments: dict[tuple[str, ...], bytes] = {}

    def __repr__(self) -> str:
        return f"Minter(domain={self._tenant.domain!r}, keys={self._keys!r})"

    # -- signed tokens -----------------------------------------------------------------

    def _segment(self, *header: str) -> bytes:
        """The encoded protected header for (alg, typ[, kid]) or (alg, enc, "iss"|"typ", value)."""
        segment = self._segments.get(header)
        if segment is None:
            if header[0] == "dir":
                fields = {"alg": "dir", "enc": header[1], header[2]: header[3]}
            else:
                fields = dict(zip(("alg", "typ", "kid"), header, strict=False))
            segment = _header_segment(fields)
            if len(self._segments) < MAX_HEADER_SEGMENTS:
                self._segments[header] = segment
        return segment

    def access_token(self, issued: Issued) -> str:
        """The access token for ``issued``: a signed JWT, or an opaque sealed token (R48)."""
        if issued.format == _OPAQUE:
            return self._seal(self._segment("dir", "A256GCM", "iss", issued.issuer), _json_bytes(issued.claims))
        header = issued.header
        if header is None or issued.signing_key is None:
            raise ValueError("a JWT access token needs a header and a signing key")
        alg = _ALG_VALUES.get(header.alg) or SigningAlg(header.alg).value
        claims = issued.claims
        if issued.needs_jti:
            claims = {**claims, "jti": self._random_bytes(16).hex()}
        if issued.signing_key == "api_secret":
            if alg != _HS256:
                raise ValueError(f"the API secret signs HS256 only, not {alg}")
            key = self._hmac.get(issued.api or "")
            if key is None:
                raise ValueError(f"API {issued.api!r} has no signing secret")
            return _sign(self._segment(alg, header.typ), claims, alg, key.get_op_key("sign"))
        if alg == _HS256:
            raise ValueError("the tenant key signs RS256 or PS256, not HS256")
        signer = self._keys._signer()
        return _sign(self._segment(alg, header.typ, signer.kid), claims, alg, signer.private)

    def id_token(self, claims: Mapping[str, Any], *, at_hash_of: str | None = None, c_hash_of: str | None = None) -> str:
        """An ID token: RS256 with the tenant's current key. ``at_hash_of`` / ``c_hash_of``
        are the access token and code returned beside it from /authorize, whose hashes the
        decision said it must carry (OpenID Connect Core 3.3.2.11)."""
        signer = self._keys._signer()
        claims = dict(claims)
        if at_hash_of is not None:
            claims["at_hash"] = token_hash(at_hash_of)
        if c_hash_of is not None:
            claims["c_hash"] = token_hash(c_hash_of)
        return _sign(self._segment("RS256", "JWT", signer.kid), claims, "RS256", signer.private)

    def verify_jwt(self, token: str, *, audience: str) -> PresentedToken | None:
        """Header and claims of a JWT whose signature checks out for ``audience``, else None.

        For an API the algorithm is pinned to its ``signing_alg``: "none" and RS/HS
        confusion never verify. RS256/PS256 use the published tenant keys (selected by
        ``kid``); HS256 the API's secret. For audiences that are not APIs (such as
        /userinfo) only the tenant key verifies, with RS256 or PS256; which of the two is
        acceptable there is the engine's call. Claims are not judged here; that is
        :func:`claimsengine.validate_access_token`'s job.
        """
        if len(token) > MAX_TOKEN_CHARS:
            return None
        api = self._tenant.index.apis.get(audience)
        allowed = (SigningAlg(api.signing_alg).value,) if api is not None else _TENANT_ALGS
        try:
            obj = jws.extract_compact(token.encode("ascii"), registry=_PARSE_REGISTRY)
            header = obj.headers()
            alg = header.get("alg")
            if alg not in allowed or "crit" in header or "b64" in header:
                return None
            assert isinstance(alg, str)
            candidates: Iterable[OctKey | RSAKey]
            if alg == SigningAlg.HS256.value:
                hmac_key = self._hmac.get(audience)
                candidates = () if hmac_key is None else (hmac_key,)
            else:
                candidates = self._keys._verifiers(header.get("kid"))
            registry = _PINNED[alg]
            if not any(jws.validate_compact(obj, key, registry=registry) for key in candidates):
                return None
            claims = json.loads(obj.payload)
            if not isinstance(claims, dict):
                return None
            return PresentedToken(header=header, claims=claims)
        except (JoseError, ValueError, TypeError, KeyError, UnicodeError, binascii.Error, RecursionError):
            return None

    # -- sealed values -----------------------------------------------------------------

    def code(self, grant: AuthorizationGrant) -> str:
        """An authorization code: the grant, sealed; readable only by :meth:`read_code`."""
        return self._seal(self._segment("dir", "A256GCM", "typ", CODE_TYP), grant.model_dump_json().encode("utf-8"))

    def read_code(self, code: str) -> AuthorizationGrant | None:
        """The grant behind ``code``, or None (tampered, foreign, another kind, garbage)."""
        return self._unseal_model(code, CODE_TYP, AuthorizationGrant)

    def refresh_token(self, grant: RefreshGrant) -> str:
        """A refresh token: the grant, sealed; readable only by :meth:`read_refresh_token`."""
        return self._seal(self._segment("dir", "A256GCM", "typ", REFRESH_TYP), grant.model_dump_json().encode("utf-8"))

    def read_refresh_token(self, token: str) -> RefreshGrant | None:
        """The grant behind ``token``, or None."""
        return self._unseal_model(token, REFRESH_TYP, RefreshGrant)

    def device_code(self, grant: DeviceGrant) -> str:
        """A device code: the device grant (with its user code), sealed; see :meth:`read_device_code`."""
        return self._seal(self._segment("dir", "A256GCM", "typ", DEVICE_TYP), grant.model_dump_json().encode("utf-8"))

    def read_device_code(self, code: str) -> DeviceGrant | None:
        """The device grant behind ``code``, or None."""
        return self._unseal_model(code, DEVICE_TYP, DeviceGrant)

    def mfa_token(self, grant: MfaGrant) -> str:
        """An mfa_token: the withheld login, sealed; readable only by :meth:`read_mfa_token`."""
        return self._seal(self._segment("dir", "A256GCM", "typ", MFA_TYP), grant.model_dump_json().encode("utf-8"))

    def read_mfa_token(self, token: str) -> MfaGrant | None:
        """The login behind an mfa_token, or None (tampered, foreign, another kind, garbage)."""
        return self._unseal_model(token, MFA_TYP, MfaGrant)

    def seal(self, typ: str, value: BaseModel) -> str:
        """Any model sealed under the purpose marker ``typ`` (a session cookie, a form's
        anti-forgery token); readable only by :meth:`unseal` with the same ``typ``."""
        if not typ.startswith("claimsengine.") or typ in _MINTED_TYPS:
            raise ValueError(f"not a purpose of its own: {typ!r}")
        return self._seal(self._segment("dir", "A256GCM", "typ", typ), value.model_dump_json().encode("utf-8"))

    def unseal(self, token: str, typ: str, model: type[_M]) -> _M | None:
        """What :meth:`seal` sealed as ``typ``, else None (tampered, another key, another purpose)."""
        return self._unseal_model(token, typ, model)

    def read_opaque(self, token: str) -> dict[str, Any] | None:
        """The claims of an opaque access token we minted, or None."""
        opened = self._unseal(token)
        if opened is None:
            return None
        protected, plaintext = opened
        if "typ" in protected or not isinstance(protected.get("iss"), str):
            return None
        try:
            claims = json.loads(plaintext)
        except (ValueError, RecursionError):
            return None
        return claims if isinstance(claims, dict) else None

    def _seal(self, protected: bytes, plaintext: bytes) -> str:
        """A compact JWE, dir + A256GCM (RFC 7516 section 7.1, RFC 7518 section 5.3): the
        protected header is the additional authenticated data; there is no encrypted key."""
        iv = self._random_bytes(GCM_IV_BYTES)
        if len(iv) != GCM_IV_BYTES:
            raise ValueError("the random source returned the wrong number of bytes")
        sealed = self._aead.encrypt(iv, plaintext, protected)
        parts = (protected, b"", _b64_bytes(iv), _b64_bytes(sealed[:-GCM_TAG_BYTES]), _b64_bytes(sealed[-GCM_TAG_BYTES:]))
        return b".".join(parts).decode("ascii")

    def _unseal(self, token: str) -> tuple[dict[str, Any], bytes] | None:
        if len(token) > MAX_TOKEN_CHARS:
            return None
        try:
            obj = jwe.decrypt_compact(token.encode("ascii"), self._seal_key, registry=_SEAL_REGISTRY)
        except (JoseError, ValueError, TypeError, KeyError, UnicodeError, binascii.Error, RecursionError):
            return None
        protected = dict(obj.protected)
        if protected.get("alg") != "dir" or protected.get("enc") != "A256GCM" or obj.plaintext is None:
            return None
        return protected, bytes(obj.plaintext)

    def _unseal_model(self, token: str, typ: str, model: type[_M]) -> _M | None:
        opened = self._unseal(token)
        if opened is None or opened[0].get("typ") != typ:
            return None
        try:
            return model.model_validate_json(opened[1])
        except ValidationError:
            return None


# Header segments a Minter remembers: a few per key (kinds of token, typ, kid) and per issuer.
MAX_HEADER_SEGMENTS: Final = 1024


# joserfc's algorithm objects: their padding and hash are what serialize_compact signs with.
_ALGORITHMS: Final[dict[str, Any]] = {alg: _SIGN_REGISTRY.get_alg(alg) for alg in _ACCESS_ALGS}
# Their hash objects, built once (stateless descriptions of the hash: one serves every signature).
_HASHES: Final[dict[str, Any]] = {alg: model.hash_alg() for alg, model in _ALGORITHMS.items() if alg != "HS256"}
# Read per token: each algorithm's wire name by member (or name), and the enum members used.
_ALG_VALUES: Final[dict[str, str]] = {alg.value: alg.value for alg in SigningAlg}
_HS256: Final = SigningAlg.HS256.value
_OPAQUE: Final = TokenFormat.OPAQUE


def _sign(segment: bytes, claims: Mapping[str, Any], alg: str, key: rsa.RSAPrivateKey | bytes) -> str:
    """A compact JWS (RFC 7515 section 7.1): what ``jws.serialize_compact`` writes with joserfc's
    algorithm ``alg`` (its padding and hash; HMAC as joserfc computes it), without re-checking our
    own constant header and key on every token. ``key`` is the RSA private key, or the HMAC secret."""
    signing_input = segment + b"." + _b64_bytes(_json_bytes(claims))
    model = _ALGORITHMS[alg]
    if isinstance(key, bytes):
        signature = hmac.new(key, signing_input, model.hash_alg).digest()
    else:
        signature = key.sign(signing_input, model.padding, _HASHES[alg])
    return (signing_input + b"." + _b64_bytes(signature)).decode("ascii")


# ---------------------------------------------------------------------------------------
# private_key_jwt
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ClientKey:
    key: RSAKey
    alg: str
    kid: str | None


def _client_keys(tenant: Tenant) -> dict[str, tuple[_ClientKey, ...]]:
    """Every client's registered public keys, parsed once. Unparseable PEMs are skipped."""
    parsed: dict[str, tuple[_ClientKey, ...]] = {}
    for client in tenant.clients:
        keys: list[_ClientKey] = []
        for registered in client.public_keys:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", SecurityWarning)
                    key = RSAKey.import_key(registered.pem.encode("utf-8"))
            except (JoseError, ValueError, TypeError):
                continue
            keys.append(_ClientKey(key=key, alg=registered.alg, kid=registered.kid))
        if keys:
            parsed[client.client_id] = tuple(keys)
    return parsed


def replay_key(assertion: ClientAssertion, *, now: int) -> tuple[str, int] | None:
    """The key under which a signature-checked assertion's ``jti`` is remembered, and until when
    (its ``exp`` plus the clock skew, or the longest lifetime when ``exp`` is not a number)."""
    sub, jti, exp = assertion.claims.get("sub"), assertion.claims.get("jti"), assertion.claims.get("exp")
    if not assertion.signature_valid or not isinstance(sub, str) or not isinstance(jti, str):
        return None
    base = exp if type(exp) is int else now + ASSERTION_MAX_LIFETIME
    return f"{sub}\0{jti}", base + ASSERTION_CLOCK_SKEW


class AssertionVerifier:
    """private_key_jwt (R9): checks an assertion's signature.

    Returns facts (:class:`~claimsengine.model.ClientAssertion`); the engine judges them. Replay
    is the server's business: it asks its store about :func:`replay_key` and records the key
    only once the engine found the assertion otherwise valid.
    """

    def __init__(self, tenant: Tenant) -> None:
        self._tenant = tenant
        self._keys = _client_keys(tenant)

    def __repr__(self) -> str:
        return f"AssertionVerifier(domain={self._tenant.domain!r}, clients={len(self._keys)})"

    def verify(self, client_assertion: str, *, client_id_hint: str | None, now: int) -> ClientAssertion | None:
        """Facts about ``client_assertion``; None only if it is not a parseable compact JWS."""
        try:
            raw = client_assertion.encode("utf-8")
            obj = jws.extract_compact(raw, registry=_PARSE_REGISTRY)
            header = obj.headers()
            claims = json.loads(obj.payload)
        except (JoseError, ValueError, TypeError, KeyError, UnicodeError, binascii.Error, RecursionError):
            return None
        alg = header.get("alg")
        if not isinstance(alg, str) or not isinstance(claims, dict) or "b64" in header:
            return None
        kid = header.get("kid")
        kid = kid if isinstance(kid, str) else None

        client_id = self._find_client(client_id_hint, claims)
        key_alg: str | None = None
        if client_id is not None and alg in _ASSERTION_REGISTRY:
            key_alg = self._check_signature(obj, alg, kid, self._keys[client_id])

        try:
            return ClientAssertion(
                alg=alg,
                kid=kid,
                claims=claims,
                size=len(raw),
                signature_valid=key_alg is not None,
                key_alg=key_alg,
            )
        except ValidationError:
            return None

    def _find_client(self, hint: str | None, claims: Mapping[str, Any]) -> str | None:
        candidates = [hint] if hint else [claims.get("iss"), claims.get("sub")]
        for candidate in candidates:
            if isinstance(candidate, str) and candidate in self._keys:
                return candidate
        return None

    @staticmethod
    def _check_signature(obj: Any, alg: str, kid: str | None, keys: tuple[_ClientKey, ...]) -> str | None:
        """The registered alg of the key that verifies, or None. A matching kid is tried first."""
        ordered = sorted(keys, key=lambda k: not (kid is not None and k.kid == kid))
        registry = _ASSERTION_REGISTRY[alg]
        for registered in ordered:
            try:
                if jws.validate_compact(obj, registered.key, registry=registry):
                    return registered.alg
            except (JoseError, ValueError, TypeError):
                continue
        return None
