"""API keys: generation, hashing, verification, and the bearer header.

A key is ``cis_`` + 52 lowercase base32 characters (32 random bytes, 256 bits). It is
shown once, at creation; CIS stores only ``hash_api_key(key)``.

Hashing choice: **plain SHA-256, no salt**, written ``sha256:<64 hex>``. Salts and slow
hashes (bcrypt, scrypt) protect *low-entropy* secrets such as passwords from guessing; a
256-bit random key cannot be guessed, so they add nothing, while an unsalted digest can be
looked up directly: the API keeps ``{hash: tenant}`` from its Tenant watch and
authenticates a request with one dict lookup instead of trying every tenant's salt. The
final comparison is constant-time (``verify_api_key``). Keys of a foreign shape are refused
before hashing, so nobody can use a short password as a key.

``api_key_id`` (the first 12 hex of the hash) names a key in listings and revocations
without revealing anything usable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

from cis.domain.errors import Unauthenticated
from cis.domain.ids import RandomBytes

API_KEY_PREFIX = "cis_"
_KEY_BYTES = 32
_API_KEY = re.compile(r"cis_[a-z2-7]{52}")
_HASH = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class NewApiKey:
    """A freshly generated key: ``key`` goes to the user once, ``hash`` to storage."""

    key: str
    key_id: str
    hash: str

    def __repr__(self) -> str:  # never log the key itself
        return f"NewApiKey(key_id={self.key_id!r})"


def generate_api_key(random_bytes: RandomBytes) -> NewApiKey:
    """A new key from ``random_bytes`` (``secrets.token_bytes`` in production)."""
    data = random_bytes(_KEY_BYTES)
    if len(data) < _KEY_BYTES:
        raise ValueError("random source returned too few bytes")
    body = base64.b32encode(data[:_KEY_BYTES]).decode("ascii").rstrip("=").lower()
    key = API_KEY_PREFIX + body
    digest = hash_api_key(key)
    return NewApiKey(key=key, key_id=api_key_id(digest), hash=digest)


def is_api_key(candidate: str) -> bool:
    """Whether ``candidate`` has the shape of a CIS API key."""
    return _API_KEY.fullmatch(candidate) is not None


def hash_api_key(key: str) -> str:
    """``sha256:<hex>`` of the key (see the module docstring for why no salt)."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def is_key_hash(value: str) -> bool:
    return _HASH.fullmatch(value) is not None


def api_key_id(key_hash: str) -> str:
    """A short public name for a stored key: 12 hex chars of its hash."""
    return key_hash.removeprefix("sha256:")[:12]


def verify_api_key(key: str, stored_hash: str) -> bool:
    """Constant-time check of ``key`` against a stored hash."""
    if not is_api_key(key):
        return False
    return hmac.compare_digest(hash_api_key(key).encode(), stored_hash.encode())


def bearer_key(authorization: str | None) -> str:
    """The key of an ``Authorization: Bearer <key>`` header (gRPC: the ``authorization``
    metadata). Raises ``Unauthenticated`` if missing or malformed; whether the key exists
    is the caller's lookup."""
    if not authorization:
        raise Unauthenticated("missing Authorization: Bearer <API key>")
    scheme, _, key = authorization.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not is_api_key(key):
        raise Unauthenticated("malformed Authorization header: expected Bearer <API key>")
    return key
