"""Syntax predicates for the names and strings CIS accepts.

Pure string checks shared by ``ids``, ``spec`` and ``apikeys``: Kubernetes object names
(DNS-1123), label keys and values, environment variable names, container image
references, client tokens and CIDRs. Each predicate returns ``bool`` (or a reason string)
so the caller can raise ``InvalidInput`` with the right field path; nothing here knows
about fields.

The rules follow the published grammars (Kubernetes API conventions for names and labels,
the OCI distribution reference grammar for images); they are written from those
grammars, not copied from any implementation.
"""

from __future__ import annotations

import ipaddress
import re

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def is_dns1123_label(value: str, max_length: int = DNS1123_LABEL_MAX) -> bool:
    """Lowercase alphanumerics and '-', starting and ending alphanumeric, <= 63 chars."""
    return 0 < len(value) <= max_length and _DNS1123_LABEL.fullmatch(value) is not None


def is_dns1123_subdomain(value: str) -> bool:
    """Dot-separated DNS-1123 labels, <= 253 chars in total."""
    return (
        0 < len(value) <= DNS1123_SUBDOMAIN_MAX
        and _DNS1123_SUBDOMAIN.fullmatch(value) is not None
        and all(len(part) <= DNS1123_LABEL_MAX for part in value.split("."))
    )


# --- labels -------------------------------------------------------------------------------

_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
LABEL_VALUE_MAX = 63


def label_key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid label key (``[prefix/]name``), or None if it is."""
    prefix, slash, name = key.rpartition("/")
    if slash and not is_dns1123_subdomain(prefix):
        return "label key prefix must be a DNS-1123 subdomain"
    if not name or len(name) > 63 or _LABEL_NAME.fullmatch(name) is None:
        return (
            "label key name must be 1-63 characters of alphanumerics, '-', '_' or '.', "
            "starting and ending with an alphanumeric"
        )
    return None


def is_label_value(value: str) -> bool:
    """Empty, or <= 63 chars of alphanumerics, '-', '_', '.' with alphanumeric ends."""
    return value == "" or (len(value) <= LABEL_VALUE_MAX and _LABEL_NAME.fullmatch(value) is not None)


# --- environment variables ----------------------------------------------------------------

_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
ENV_NAME_MAX = 256


def is_env_name(name: str) -> bool:
    """Kubernetes' classic env var rule: ``[-._a-zA-Z][-._a-zA-Z0-9]*``, not '.' or '..'.

    The same alphabet is valid in Secret keys, which lets secret env values live in a Secret
    under a key derived from the name.
    """
    return 0 < len(name) <= ENV_NAME_MAX and _ENV_NAME.fullmatch(name) is not None and name not in (".", "..")


# --- image references ---------------------------------------------------------------------
#
# reference := [domain "/"] path [":" tag] ["@" digest]
# domain    := host [":" port], host = DNS-ish components joined by "." (or "localhost")
# path      := component ("/" component)*, component = [a-z0-9]+ joined by '.', '_', '__'
#              or runs of '-'
# tag       := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
# digest    := algorithm ":" hex{32,}

_HOST_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_HOST_COMPONENT}(?:\.{_HOST_COMPONENT})*(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_IMAGE = re.compile(
    rf"(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?"
)
IMAGE_NAME_MAX = 255


def image_reference_problem(image: str) -> str | None:
    """Why ``image`` is not a valid image reference, or None if it is.

    ``nginx``, ``nginx:1.27``, ``registry.example:5000/team/app@sha256:<64 hex>`` are valid.
    An uppercase repository, an empty tag or whitespace is not.
    """
    if not image:
        return "must not be empty"
    if image != image.strip() or any(ch.isspace() for ch in image):
        return "must not contain whitespace"
    match = _IMAGE.fullmatch(image)
    if match is None:
        return "is not a valid image reference ([registry[:port]/]repository[:tag][@digest], repository in lowercase)"
    domain = match.group("domain")
    name_length = len(match.group("path")) + (len(domain) + 1 if domain else 0)
    if name_length > IMAGE_NAME_MAX:
        return f"repository name is longer than {IMAGE_NAME_MAX} characters"
    return None


# --- misc -----------------------------------------------------------------------------------

CLIENT_TOKEN_MAX = 64


def is_client_token(token: str) -> bool:
    """1-64 printable ASCII characters without spaces (codes 33-126), as Fargate's RunTask."""
    return 0 < len(token) <= CLIENT_TOKEN_MAX and all(33 <= ord(ch) <= 126 for ch in token)


def cidr_problem(cidr: str) -> str | None:
    """Why ``cidr`` is not an IPv4/IPv6 network in prefix notation, or None if it is.

    Host bits must be zero (``10.0.0.0/8``, not ``10.0.0.1/8``) so the rule means what it
    says; a bare address needs an explicit ``/32`` or ``/128``.
    """
    if "/" not in cidr:
        return "must be in prefix notation, e.g. 10.0.0.0/8 or 203.0.113.7/32"
    try:
        ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            network = ipaddress.ip_network(cidr, strict=False)
            return f"has host bits set; did you mean {network}?"
        return "is not a valid CIDR"
    return None


_REGISTRY_SERVER = re.compile(_DOMAIN)


def is_registry_server(server: str) -> bool:
    """A registry host with optional port (``registry.example:5000``), no scheme or path:
    the form that prefixes image references, so a credential visibly matches its images."""
    return 0 < len(server) <= DNS1123_SUBDOMAIN_MAX and _REGISTRY_SERVER.fullmatch(server) is not None


# --- paths ------------------------------------------------------------------------------------

PATH_MAX = 1024
PATH_COMPONENT_MAX = 255


def relative_path_problem(path: str) -> str | None:
    """Why ``path`` is not a clean relative path inside a directory, or None if it is.

    ``conf/app.yaml`` is; ``/etc/x``, ``a/../b``, ``a//b``, ``./a`` and ``..data`` are not
    (a component starting with ``..`` is reserved by the kubelet, which publishes volume
    contents through ``..data`` links).
    """
    if not path:
        return "must not be empty"
    if len(path) > PATH_MAX:
        return f"must be at most {PATH_MAX} characters"
    if path.startswith("/"):
        return "must be a relative path"
    if "\x00" in path:
        return "must not contain NUL"
    for part in path.split("/"):
        if part in ("", "."):
            return "must not contain empty or '.' components"
        if part.startswith(".."):
            return "must not contain '..' or components starting with '..'"
        if len(part) > PATH_COMPONENT_MAX:
            return f"components must be at most {PATH_COMPONENT_MAX} characters"
    return None


def mount_path_problem(path: str) -> str | None:
    """Why ``path`` is not an absolute mount point (``/data``), or None if it is."""
    if not path.startswith("/"):
        return "must be an absolute path"
    if path.rstrip("/") == "":
        return "must not be /"
    return relative_path_problem(path.strip("/"))
