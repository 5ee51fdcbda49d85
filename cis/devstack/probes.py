"""Blocking readiness probes for the stack's components (HTTP(S) GETs on loopback)."""

from __future__ import annotations

import json
import ssl
import urllib.request
from pathlib import Path
from typing import Any

from cis.devstack.pki import CertPair


def tls_context(ca: Path, client: CertPair | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        ctx.load_cert_chain(str(client.cert), str(client.key))
    return ctx


def get(url: str, *, context: ssl.SSLContext | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET a URL; returns (status, body) also for 4xx/5xx answers."""
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as err:
        return int(err.code), err.read()


def get_json(url: str, *, context: ssl.SSLContext | None = None, timeout: float = 5.0) -> Any:
    status, body = get(url, context=context, timeout=timeout)
    if status != 200:
        raise RuntimeError(f"GET {url}: HTTP {status}: {body[:200]!r}")
    return json.loads(body)


def answers_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    status, _ = get(url, context=context, timeout=2.0)
    return status == 200
