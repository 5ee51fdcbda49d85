"""Identifiers: typed names and instance id generation.

An instance id is ``ci-`` followed by 20 lowercase base32 characters (100 bits), e.g.
``ci-mfrggzdfmztwq2lknnwg``. It is a valid DNS-1123 label, so it serves as the
``ContainerInstance`` name in the management cluster *and* the pod name on the backing
cluster: a retried create can never make a second pod (DESIGN §2).

Randomness is a parameter (``random_bytes``, e.g. ``secrets.token_bytes``) so tests are
deterministic. ``instance_id_for_token`` derives the id from ``(tenant, clientToken)`` with
SHA-256: the same token always names the same instance, which makes the CR create itself
the idempotency check (AlreadyExists → compare fingerprints → return it or 409).

Tenants live in namespace ``tenant-<name>`` on the management cluster and on every backing
cluster; ``tenant_namespace`` / ``tenant_from_namespace`` are the only place that spelling
exists.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from typing import NewType

from cis.domain.errors import InvalidInput
from cis.domain.syntax import is_client_token, is_dns1123_label

InstanceId = NewType("InstanceId", str)
TenantName = NewType("TenantName", str)
ClusterName = NewType("ClusterName", str)
RegionName = NewType("RegionName", str)
ZoneName = NewType("ZoneName", str)

RandomBytes = Callable[[int], bytes]
"""A source of random bytes: ``secrets.token_bytes`` in production, a fake in tests."""

INSTANCE_ID_PREFIX = "ci-"
INSTANCE_ID_RANDOM_CHARS = 20
_INSTANCE_ID = re.compile(r"ci-[a-z2-7]{20}")

TENANT_NAMESPACE_PREFIX = "tenant-"
TENANT_NAME_MAX = 63 - len(TENANT_NAMESPACE_PREFIX)  # the namespace must stay a DNS label

# Domain separation: a token-derived id must not equal some other hash CIS might compute.
_TOKEN_ID_CONTEXT = b"cis.io/instance-id/v1\x00"


def _base32_chars(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def new_instance_id(random_bytes: RandomBytes) -> InstanceId:
    """A fresh random instance id (100 bits of entropy; 13 bytes are drawn)."""
    data = random_bytes(13)
    if len(data) < 13:
        raise ValueError("random source returned too few bytes")
    return InstanceId(INSTANCE_ID_PREFIX + _base32_chars(data[:13])[:INSTANCE_ID_RANDOM_CHARS])


def instance_id_for_token(tenant: TenantName, client_token: str, index: int | None = None) -> InstanceId:
    """The deterministic id of the instance created by ``tenant`` with ``client_token``.

    Same syntax as random ids, so ids do not reveal whether a token was used. ``index``
    numbers the copies of a batch create made with one token (copy 0, 1, ...), so a retried
    batch names the same instances. Raises ``InvalidInput("clientToken", ...)`` if the
    token is not 1-64 printable ASCII chars.
    """
    if not is_client_token(client_token):
        raise InvalidInput("clientToken", "must be 1-64 printable ASCII characters without spaces")
    material = _TOKEN_ID_CONTEXT + tenant.encode("utf-8") + b"\x00" + client_token.encode()
    if index is not None:
        if index < 0:
            raise ValueError("index must be >= 0")
        material += b"\x00#%d" % index
    digest = hashlib.sha256(material).digest()
    return InstanceId(INSTANCE_ID_PREFIX + _base32_chars(digest)[:INSTANCE_ID_RANDOM_CHARS])


def is_instance_id(value: str) -> bool:
    """True if ``value`` has the shape of an instance id (use before any lookup: a
    malformed id in a URL is simply "not found")."""
    return _INSTANCE_ID.fullmatch(value) is not None


def parse_instance_id(value: str, field: str = "id") -> InstanceId:
    """``value`` as an ``InstanceId`` or ``InvalidInput(field, ...)``."""
    if not is_instance_id(value):
        raise InvalidInput(field, "is not an instance id (ci- followed by 20 base32 chars)")
    return InstanceId(value)


def parse_tenant_name(value: str, field: str = "name") -> TenantName:
    """A tenant name: a DNS-1123 label of at most 56 chars (``tenant-`` + name <= 63)."""
    if not is_dns1123_label(value, TENANT_NAME_MAX):
        raise InvalidInput(
            field,
            f"must be a DNS-1123 label of at most {TENANT_NAME_MAX} characters (lowercase letters, digits, '-')",
        )
    return TenantName(value)


def parse_cluster_name(value: str, field: str = "name") -> ClusterName:
    """A backing cluster name: a DNS-1123 label (it appears in labels and Secret names)."""
    if not is_dns1123_label(value):
        raise InvalidInput(field, "must be a DNS-1123 label (lowercase letters, digits, '-')")
    return ClusterName(value)


def parse_region_name(value: str, field: str = "region") -> RegionName:
    """A region name such as ``eu-west-1``: a DNS-1123 label."""
    if not is_dns1123_label(value):
        raise InvalidInput(field, "must be a DNS-1123 label (lowercase letters, digits, '-')")
    return RegionName(value)


def parse_zone_name(value: str, field: str = "zone") -> ZoneName:
    """A zone name such as ``eu-west-1a``: a DNS-1123 label."""
    if not is_dns1123_label(value):
        raise InvalidInput(field, "must be a DNS-1123 label (lowercase letters, digits, '-')")
    return ZoneName(value)


def tenant_namespace(tenant: TenantName) -> str:
    """The namespace of ``tenant`` on the management and backing clusters."""
    return TENANT_NAMESPACE_PREFIX + tenant


def tenant_from_namespace(namespace: str) -> TenantName | None:
    """The tenant owning ``namespace``, or None if it is not a tenant namespace."""
    if not namespace.startswith(TENANT_NAMESPACE_PREFIX):
        return None
    name = namespace[len(TENANT_NAMESPACE_PREFIX) :]
    if not is_dns1123_label(name, TENANT_NAME_MAX):
        return None
    return TenantName(name)
