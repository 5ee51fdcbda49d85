from __future__ import annotations

import hashlib

import pytest

from cis.domain.apikeys import (
    api_key_id,
    bearer_key,
    generate_api_key,
    hash_api_key,
    is_api_key,
    verify_api_key,
)
from cis.domain.errors import Unauthenticated


def fixed(n: int) -> bytes:
    return bytes(range(n))


def test_generated_key_shape_and_hash() -> None:
    new = generate_api_key(fixed)
    assert new.key.startswith("cis_") and len(new.key) == 56 and is_api_key(new.key)
    assert new.hash == "sha256:" + hashlib.sha256(new.key.encode()).hexdigest()
    assert new.hash == hash_api_key(new.key) and new.key_id == api_key_id(new.hash)
    assert new.key not in repr(new)
    assert generate_api_key(fixed) == new
    assert generate_api_key(lambda n: b"\x07" * n).key != new.key


def test_verify() -> None:
    new = generate_api_key(fixed)
    assert verify_api_key(new.key, new.hash)
    other = generate_api_key(lambda n: b"\x09" * n)
    assert not verify_api_key(other.key, new.hash)
    assert not verify_api_key("password", hash_api_key("password"))  # wrong shape never passes


def test_short_random_source_is_refused() -> None:
    with pytest.raises(ValueError):
        generate_api_key(lambda n: b"\x00" * 8)


KEY = generate_api_key(fixed).key


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (f"Bearer {KEY}", True),
        (f"bearer {KEY}", True),
        (f"  Bearer   {KEY} ", True),
        (None, False),
        ("", False),
        (f"Basic {KEY}", False),
        ("Bearer", False),
        ("Bearer not-a-key", False),
        (f"Bearer {KEY}x", False),
    ],
    ids=["ok", "lowercase-scheme", "spaces", "missing", "empty", "basic", "no-key", "bad-key", "long-key"],
)
def test_bearer_key(header: str | None, ok: bool) -> None:
    if ok:
        assert bearer_key(header) == KEY
    else:
        with pytest.raises(Unauthenticated):
            bearer_key(header)
