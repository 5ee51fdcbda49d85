from __future__ import annotations

import pytest

from cis.domain.errors import InvalidInput
from cis.domain.ids import (
    TenantName,
    instance_id_for_token,
    is_instance_id,
    new_instance_id,
    parse_tenant_name,
    tenant_from_namespace,
    tenant_namespace,
)
from cis.domain.syntax import is_dns1123_label


def counting(n: int) -> bytes:
    return bytes(range(n))


def test_new_instance_id_is_a_dns_label_of_the_documented_shape() -> None:
    for fill in (b"\x00", b"\xff", b"\x5a"):

        def source(n: int, fill: bytes = fill) -> bytes:
            return fill * n

        iid = new_instance_id(source)
        assert iid.startswith("ci-") and len(iid) == 23
        assert is_instance_id(iid) and is_dns1123_label(iid)


def test_new_instance_id_depends_only_on_the_random_source() -> None:
    assert new_instance_id(counting) == new_instance_id(counting)
    assert new_instance_id(counting) != new_instance_id(lambda n: b"\x01" * n)


def test_new_instance_id_refuses_a_short_random_source() -> None:
    with pytest.raises(ValueError):
        new_instance_id(lambda n: b"\x00")


def test_token_ids_are_deterministic_and_scoped() -> None:
    a = instance_id_for_token(TenantName("acme"), "tok-1")
    assert a == instance_id_for_token(TenantName("acme"), "tok-1")
    assert is_instance_id(a)
    others = {
        instance_id_for_token(TenantName("other"), "tok-1"),
        instance_id_for_token(TenantName("acme"), "tok-2"),
        instance_id_for_token(TenantName("acme"), "tok-1", 0),
        instance_id_for_token(TenantName("acme"), "tok-1", 1),
    }
    assert a not in others and len(others) == 4


@pytest.mark.parametrize("token", ["", "a b", "x" * 65, "é"], ids=["empty", "space", "too-long", "non-ascii"])
def test_bad_client_token_names_the_field(token: str) -> None:
    with pytest.raises(InvalidInput) as err:
        instance_id_for_token(TenantName("acme"), token)
    assert err.value.field == "clientToken"


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("ci-aaaaaaaaaaaaaaaaaaaa", True),
        ("ci-abcdefghijklmnopqrs2", True),
        ("ci-aaaaaaaaaaaaaaaaaaa", False),
        ("ci-aaaaaaaaaaaaaaaaaaa1", False),
        ("CI-aaaaaaaaaaaaaaaaaaaa", False),
        ("xx-aaaaaaaaaaaaaaaaaaaa", False),
    ],
    ids=["ok", "ok-digits", "short", "digit-1-not-base32", "upper", "prefix"],
)
def test_is_instance_id(value: str, ok: bool) -> None:
    assert is_instance_id(value) is ok


def test_tenant_namespace_round_trip() -> None:
    assert tenant_namespace(TenantName("acme")) == "tenant-acme"
    assert tenant_from_namespace("tenant-acme") == "acme"
    assert tenant_from_namespace("kube-system") is None
    assert tenant_from_namespace("tenant-") is None


@pytest.mark.parametrize(
    "name", ["", "Acme", "a_b", "-a", "a" * 57], ids=["empty", "upper", "underscore", "dash", "long"]
)
def test_parse_tenant_name_rejects(name: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_tenant_name(name)
    assert err.value.field == "name"
    assert parse_tenant_name("a" * 56) == "a" * 56
