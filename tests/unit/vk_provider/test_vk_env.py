"""Env resolution decisions: values, references, missing references and their event reasons."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.unit.vk_provider.builders import pod
from vk_provider.env import (
    CONFIGMAP,
    SECRET,
    FetchFailed,
    Lookup,
    Ref,
    expand,
    references,
    resolve_pod_env,
    secret_data,
)

CM = {"color": "blue", "size": "L"}
SEC = {"password": "s3cret"}
FOUND: dict[Ref, Lookup] = {(CONFIGMAP, "cm"): CM, (SECRET, "sec"): SEC}


def with_env(env: list[dict[str, Any]] | None = None, env_from: list[dict[str, Any]] | None = None,
             **container: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "main", "image": "nginx", **container}
    if env is not None:
        c["env"] = env
    if env_from is not None:
        c["envFrom"] = env_from
    return pod(containers=[c])


def values(p: dict[str, Any], lookups: dict[Ref, Lookup] = FOUND) -> dict[str, tuple[str, bool]]:
    res = resolve_pod_env(p, lookups, "10.0.0.9")
    return {e.name: (e.value, e.secret) for e in res.env["main"]}


def cm_key(name: str, key: str, optional: bool | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": name, "key": key}
    if optional is not None:
        ref["optional"] = optional
    return {"configMapKeyRef": ref}


def secret_key(name: str, key: str, optional: bool | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": name, "key": key}
    if optional is not None:
        ref["optional"] = optional
    return {"secretKeyRef": ref}


@pytest.mark.parametrize(("value_from", "reason", "fatal"), [
    (secret_key("missing", "k"), "MandatorySecretNotFound", True),
    (secret_key("missing", "k", optional=True), "OptionalSecretNotFound", False),
    (cm_key("missing", "k"), "MandatoryConfigMapNotFound", True),
    (cm_key("missing", "k", optional=True), "OptionalConfigMapNotFound", False),
    (secret_key("sec", "nokey"), "MandatorySecretKeyNotFound", True),
    (cm_key("cm", "nokey", optional=True), "OptionalConfigMapKeyNotFound", False),
], ids=["mandatory-secret", "optional-secret", "mandatory-configmap", "optional-configmap",
        "mandatory-secret-key", "optional-configmap-key"])
def test_missing_references_give_kubernetes_reasons(value_from: dict[str, Any], reason: str, fatal: bool) -> None:
    res = resolve_pod_env(with_env([{"name": "X", "valueFrom": value_from}]), FOUND, "10.0.0.9")
    assert [e.reason for e in res.events] == [reason]
    assert all(e.warning for e in res.events)
    assert bool(res.fatal) is fatal
    assert "X" not in {e.name for e in res.env["main"]}


@pytest.mark.parametrize(("env_from", "reason", "fatal"), [
    ([{"secretRef": {"name": "missing"}}], "MandatorySecretNotFound", True),
    ([{"secretRef": {"name": "missing", "optional": True}}], "OptionalSecretNotFound", False),
    ([{"configMapRef": {"name": "missing"}}], "MandatoryConfigMapNotFound", True),
    ([{"configMapRef": {"name": "missing", "optional": True}}], "OptionalConfigMapNotFound", False),
], ids=["secret", "optional-secret", "configmap", "optional-configmap"])
def test_missing_env_from_sources(env_from: list[dict[str, Any]], reason: str, fatal: bool) -> None:
    res = resolve_pod_env(with_env(env_from=env_from), FOUND, "10.0.0.9")
    assert [e.reason for e in res.events] == [reason]
    assert bool(res.fatal) is fatal


def test_read_failures_are_reported_as_such() -> None:
    lookups: dict[Ref, Lookup] = {(SECRET, "sec"): FetchFailed("forbidden")}
    res = resolve_pod_env(with_env([{"name": "X", "valueFrom": secret_key("sec", "password")}]), lookups, "")
    assert [e.reason for e in res.events] == ["FailedToReadMandatorySecret"]
    assert res.fatal and "forbidden" in res.fatal[0]


def test_values_and_references_resolve_with_secrets_marked() -> None:
    got = values(with_env([
        {"name": "PLAIN", "value": "v"},
        {"name": "COLOR", "valueFrom": cm_key("cm", "color")},
        {"name": "PW", "valueFrom": secret_key("sec", "password")},
    ]))
    assert got == {"PLAIN": ("v", False), "COLOR": ("blue", False), "PW": ("s3cret", True)}


def test_env_from_with_prefix_then_env_wins_and_bad_names_are_skipped() -> None:
    lookups: dict[Ref, Lookup] = {**FOUND, (CONFIGMAP, "odd"): {"1bad": "x", "ok": "y"}}
    p = with_env([{"name": "CFG_color", "value": "red"}],
                 [{"configMapRef": {"name": "cm"}, "prefix": "CFG_"}, {"configMapRef": {"name": "odd"}},
                  {"secretRef": {"name": "sec"}}])
    res = resolve_pod_env(p, lookups, "")
    got = {e.name: (e.value, e.secret) for e in res.env["main"]}
    assert got == {"CFG_color": ("red", False), "CFG_size": ("L", False), "ok": ("y", False),
                   "password": ("s3cret", True)}
    assert [e.reason for e in res.events] == ["InvalidEnvironmentVariableNames"]
    assert not res.fatal


@pytest.mark.parametrize(("path", "expected"), [
    ("metadata.name", "web-1"), ("metadata.namespace", "default"), ("metadata.uid", "uid-1"),
    ("metadata.labels['app']", "web"), ("metadata.annotations['team']", "a"), ("spec.nodeName", "vnode"),
    ("spec.serviceAccountName", "default"), ("status.hostIP", "10.0.0.9"),
], ids=lambda v: str(v))
def test_field_refs(path: str, expected: str) -> None:
    assert values(with_env([{"name": "F", "valueFrom": {"fieldRef": {"fieldPath": path}}}])) == {"F": (expected, False)}


def test_pod_ip_is_unknown_before_start_and_says_so() -> None:
    res = resolve_pod_env(with_env([{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]),
                          FOUND, "")
    assert [e.reason for e in res.events] == ["UnsupportedFieldPath"]
    assert not res.fatal
    assert res.env["main"][0].value == ""


def test_unknown_field_path_is_fatal() -> None:
    res = resolve_pod_env(with_env([{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.nope"}}}]), FOUND, "")
    assert res.fatal


@pytest.mark.parametrize(("resource", "divisor", "resources", "expected"), [
    ("limits.cpu", None, {"limits": {"cpu": "500m"}}, "1"),
    ("limits.cpu", "1m", {"limits": {"cpu": "500m"}}, "500"),
    ("requests.memory", "1Mi", {"requests": {"memory": "256Mi"}}, "256"),
    ("limits.memory", "1Mi", {"requests": {"memory": "256Mi"}}, "256"),
    ("limits.memory", "1Mi", {}, "512"),
], ids=["cpu-rounds-up", "cpu-millis", "memory-request", "limit-falls-back-to-request", "cis-default"])
def test_resource_field_refs(resource: str, divisor: str | None, resources: dict[str, Any], expected: str) -> None:
    ref: dict[str, Any] = {"resource": resource}
    if divisor:
        ref["divisor"] = divisor
    p = with_env([{"name": "R", "valueFrom": {"resourceFieldRef": ref}}], resources=resources)
    assert values(p) == {"R": (expected, False)}


@pytest.mark.parametrize(("text", "expected"), [
    ("$(A)-$(B)", "1-$(B)"), ("$$(A)", "$(A)"), ("plain", "plain"), ("$(A)$(A)", "11"),
], ids=["defined-and-undefined", "escaped", "plain", "repeated"])
def test_expand(text: str, expected: str) -> None:
    assert expand(text, {"A": "1"}) == expected


def test_later_values_expand_earlier_ones() -> None:
    got = values(with_env([{"name": "A", "value": "x"}, {"name": "B", "value": "$(A)/y"}]))
    assert got["B"] == ("x/y", False)


def test_references_lists_every_source() -> None:
    p = with_env([{"name": "A", "valueFrom": cm_key("c1", "k")}, {"name": "B", "valueFrom": secret_key("s1", "k")}],
                 [{"configMapRef": {"name": "c2"}}, {"secretRef": {"name": "s2"}}])
    assert references(p) == {(CONFIGMAP, "c1"), (CONFIGMAP, "c2"), (SECRET, "s1"), (SECRET, "s2")}


def test_secret_data_decodes() -> None:
    raw = {"data": {"a": base64.b64encode(b"hello").decode()}, "stringData": {"b": "plain"}}
    assert secret_data(raw) == {"a": "hello", "b": "plain"}
