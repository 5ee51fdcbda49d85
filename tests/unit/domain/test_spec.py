from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from cis.domain.errors import InvalidInput
from cis.domain.spec import (
    InstanceSpec,
    PortRange,
    RestartPolicy,
    RuleProtocol,
    parse_spec,
    secret_data,
    spec_fingerprint,
    spec_from_json,
)

from .builders import container, raw_spec

SHA = "sha256:" + "a" * 64

FULL: dict[str, Any] = {
    "name": "my-job",
    "containers": [
        {
            "name": "web",
            "image": f"registry.example:5000/team/app:v1.2@{SHA}",
            "command": ["/bin/server"],
            "args": ["--port", "8080"],
            "env": [
                {"name": "MODE", "value": "prod"},
                {"name": "EMPTY", "value": ""},
                {"name": "DB_PASSWORD", "secretValue": "hunter2"},
            ],
            "resources": {"cpu": "300m", "memoryGiB": 0.75},
            "ports": [{"port": 8080}, {"port": 53, "protocol": "UDP"}],
        },
        {"name": "sidecar", "image": "busybox", "resources": {"cpu": 0.25, "memoryGiB": "0.25"}},
    ],
    "restartPolicy": "OnFailure",
    "imageRegistryCredentials": [{"server": "registry.example:5000", "username": "bot", "password": "s3cret"}],
    "labels": {"app": "web", "example.com/team": "a-team", "empty": ""},
    "region": "eu-west",
    "zone": "eu-west-1a",
    "ingress": [{"cidr": "0.0.0.0/0", "ports": [8080, "9000-9100"]}],
    "egress": [{"cidr": "10.1.0.0/16", "protocol": "ALL"}, {"cidr": "2001:db8::/32", "protocol": "UDP"}],
    "activeDeadlineSeconds": 3600,
    "clientToken": "retry-me-1",
}


def test_full_spec_parses() -> None:
    spec = parse_spec(FULL)
    assert spec.name == "my-job" and spec.restart_policy is RestartPolicy.ON_FAILURE
    web = spec.containers[0]
    assert web.resources.cpu == Decimal("0.3") and web.resources.cpu_millis == 300
    assert [e.secret for e in web.env] == [False, False, True]
    assert spec.ingress[0].ports == (PortRange(8080, 8080), PortRange(9000, 9100))
    assert spec.egress is not None and spec.egress[0].protocol is RuleProtocol.ALL
    # 0.3 + 0.25 vCPU, 0.75 + 0.25 GiB -> 1 vCPU / 2 GiB
    assert (spec.size.cpu_text, spec.size.memory_gib_text) == ("1", "2")


def test_defaults() -> None:
    spec = parse_spec(raw_spec())
    assert spec.restart_policy is RestartPolicy.ALWAYS
    assert spec.egress is None and spec.ingress == ()
    assert (spec.size.cpu_text, spec.size.memory_gib_text) == ("0.25", "0.5")


def test_secrets_never_serialised() -> None:
    spec = parse_spec(FULL)
    for form in (spec.to_json(), spec.to_public_json()):
        text = json.dumps(form)
        assert "hunter2" not in text and "s3cret" not in text
        assert "secretValue" not in text and "password" not in text
    assert "hunter2" not in repr(spec) and "s3cret" not in repr(spec)


def test_storage_round_trip_with_and_without_secrets() -> None:
    spec = parse_spec(FULL)
    stored = json.loads(json.dumps(spec.to_json()))
    assert spec_from_json(stored, secret_data(spec)) == spec
    bare = spec_from_json(stored)
    assert bare.to_json() == spec.to_json()
    assert bare.containers[0].env[2].secret_value is None
    with pytest.raises(ValueError):
        secret_data(bare)


def test_secret_data_keys() -> None:
    assert secret_data(parse_spec(FULL)) == {
        "env.web.DB_PASSWORD": "hunter2",
        "registry.0.password": "s3cret",
    }


def test_stored_form_is_not_accepted_from_users() -> None:
    body = raw_spec(containers=[container(env=[{"name": "X", "secret": True}])])
    with pytest.raises(InvalidInput) as err:
        parse_spec(body)
    assert err.value.field == "containers[0].env[0].secret"


def test_fingerprint() -> None:
    a, b = parse_spec(FULL), parse_spec(json.loads(json.dumps(FULL)))
    assert spec_fingerprint(a) == spec_fingerprint(b)
    changed = json.loads(json.dumps(FULL))
    changed["containers"][0]["env"][2]["secretValue"] = "other"
    assert spec_fingerprint(parse_spec(changed)) != spec_fingerprint(a)
    assert "hunter2" not in spec_fingerprint(a)


def test_decimal_cpu_forms_are_equal() -> None:
    forms = ["500m", "0.5", 0.5]
    specs = [parse_spec(raw_spec(containers=[container(resources={"cpu": f})])) for f in forms]
    assert len({s.containers[0].resources.cpu_millis for s in specs}) == 1


def c(**extra: Any) -> dict[str, Any]:
    """A body with one container carrying ``extra``."""
    return raw_spec(containers=[container(**extra)])


TOO_MANY = [container(f"c{i}", resources={"cpu": 0.01, "memoryGiB": 0.01}) for i in range(61)]

INVALID: list[tuple[str, Any, str]] = [
    ("not-an-object", [], ""),
    ("unknown-top-field", raw_spec(restart="Never"), "restart"),
    ("missing-containers", {}, "containers"),
    ("containers-not-array", {"containers": {}}, "containers"),
    ("no-containers", {"containers": []}, "containers"),
    ("too-many-containers", {"containers": TOO_MANY}, "containers"),
    ("name-upper", raw_spec(name="MyJob"), "name"),
    ("name-not-string", raw_spec(name=5), "name"),
    ("container-unknown-field", c(imagee="x"), "containers[0].imagee"),
    ("container-missing-name", {"containers": [{"image": "nginx"}]}, "containers[0].name"),
    ("container-missing-image", {"containers": [{"name": "a"}]}, "containers[0].image"),
    ("container-name-underscore", c(name="my_app"), "containers[0].name"),
    ("container-name-too-long", c(name="a" * 64), "containers[0].name"),
    (
        "duplicate-container",
        {"containers": [container("a"), container("b"), container("a")]},
        "containers[2].name",
    ),
    ("image-upper", c(image="Nginx"), "containers[0].image"),
    ("image-space", c(image="nginx latest"), "containers[0].image"),
    ("image-empty-tag", c(image="nginx:"), "containers[0].image"),
    ("image-bad-digest", c(image="nginx@sha256:abc"), "containers[0].image"),
    ("image-scheme", c(image="https://registry/x"), "containers[0].image"),
    ("command-not-list", c(command="sleep 1"), "containers[0].command"),
    ("args-not-strings", c(args=["a", 1]), "containers[0].args[1]"),
    ("env-not-list", c(env={"A": "1"}), "containers[0].env"),
    ("env-bad-name", c(env=[{"name": "1ABC", "value": "x"}]), "containers[0].env[0].name"),
    ("env-name-equals", c(env=[{"name": "A=B", "value": "x"}]), "containers[0].env[0].name"),
    ("env-missing-name", c(env=[{"value": "x"}]), "containers[0].env[0].name"),
    (
        "env-duplicate",
        c(env=[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
        "containers[0].env[1].name",
    ),
    ("env-both-values", c(env=[{"name": "A", "value": "1", "secretValue": "2"}]), "containers[0].env[0]"),
    ("env-no-value", c(env=[{"name": "A"}]), "containers[0].env[0]"),
    ("env-value-not-string", c(env=[{"name": "A", "value": 1}]), "containers[0].env[0].value"),
    ("env-value-too-long", c(env=[{"name": "A", "value": "x" * 40000}]), "containers[0].env[0].value"),
    ("resources-unknown", c(resources={"memory": "1Gi"}), "containers[0].resources.memory"),
    ("cpu-zero", c(resources={"cpu": 0}), "containers[0].resources.cpu"),
    ("cpu-negative", c(resources={"cpu": -1}), "containers[0].resources.cpu"),
    ("cpu-bool", c(resources={"cpu": True}), "containers[0].resources.cpu"),
    ("cpu-garbage", c(resources={"cpu": "lots"}), "containers[0].resources.cpu"),
    ("cpu-too-big", c(resources={"cpu": 17}), "containers[0].resources.cpu"),
    ("memory-zero", c(resources={"memoryGiB": 0}), "containers[0].resources.memoryGiB"),
    ("memory-too-big", c(resources={"memoryGiB": 121}), "containers[0].resources.memoryGiB"),
    ("memory-millis-not-allowed", c(resources={"memoryGiB": "512m"}), "containers[0].resources.memoryGiB"),
    (
        "total-cpu-too-big",
        {"containers": [container("a", resources={"cpu": 9}), container("b", resources={"cpu": 8})]},
        "containers[*].resources.cpu",
    ),
    (
        "total-memory-too-big",
        {
            "containers": [
                container("a", resources={"memoryGiB": 100}),
                container("b", resources={"memoryGiB": 21}),
            ]
        },
        "containers[*].resources.memoryGiB",
    ),
    ("port-zero", c(ports=[{"port": 0}]), "containers[0].ports[0].port"),
    ("port-too-big", c(ports=[{"port": 65536}]), "containers[0].ports[0].port"),
    ("port-float", c(ports=[{"port": 80.0}]), "containers[0].ports[0].port"),
    ("port-string", c(ports=[{"port": "80"}]), "containers[0].ports[0].port"),
    ("port-missing", c(ports=[{"protocol": "TCP"}]), "containers[0].ports[0].port"),
    ("port-protocol", c(ports=[{"port": 80, "protocol": "tcp"}]), "containers[0].ports[0].protocol"),
    (
        "port-shared-across-containers",
        {"containers": [container("a", ports=[{"port": 80}]), container("b", ports=[{"port": 80}])]},
        "containers[1].ports[0].port",
    ),
    ("restart-policy", raw_spec(restartPolicy="always"), "restartPolicy"),
    ("credentials-not-list", raw_spec(imageRegistryCredentials={}), "imageRegistryCredentials"),
    (
        "credential-missing-password",
        raw_spec(imageRegistryCredentials=[{"server": "r.example", "username": "u"}]),
        "imageRegistryCredentials[0].password",
    ),
    (
        "credential-server-with-scheme",
        raw_spec(imageRegistryCredentials=[{"server": "https://r.example", "username": "u", "password": "p"}]),
        "imageRegistryCredentials[0].server",
    ),
    (
        "credential-duplicate",
        raw_spec(
            imageRegistryCredentials=[
                {"server": "r.example", "username": "u", "password": "p"},
                {"server": "r.example", "username": "v", "password": "q"},
            ]
        ),
        "imageRegistryCredentials[1].server",
    ),
    ("labels-not-object", raw_spec(labels=["a"]), "labels"),
    ("label-key-bad", raw_spec(labels={"-a": "x"}), "labels.-a"),
    ("label-key-long", raw_spec(labels={"a" * 64: "x"}), "labels." + "a" * 64),
    ("label-prefix-bad", raw_spec(labels={"Bad_Prefix/a": "x"}), "labels.Bad_Prefix/a"),
    ("label-reserved", raw_spec(labels={"cis.io/instance": "x"}), "labels.cis.io/instance"),
    ("label-reserved-sub", raw_spec(labels={"node.kubernetes.io/x": "y"}), "labels.node.kubernetes.io/x"),
    ("label-value-bad", raw_spec(labels={"a": "has space"}), "labels.a"),
    ("label-value-not-string", raw_spec(labels={"a": 1}), "labels.a"),
    ("region-bad", raw_spec(region="EU West"), "region"),
    ("zone-bad", raw_spec(zone="a_b"), "zone"),
    ("ingress-not-list", raw_spec(ingress={"cidr": "0.0.0.0/0"}), "ingress"),
    ("ingress-missing-cidr", raw_spec(ingress=[{"ports": [80]}]), "ingress[0].cidr"),
    ("ingress-bad-cidr", raw_spec(ingress=[{"cidr": "300.0.0.0/8"}]), "ingress[0].cidr"),
    ("ingress-host-bits", raw_spec(ingress=[{"cidr": "10.0.0.1/8"}]), "ingress[0].cidr"),
    ("ingress-no-prefix", raw_spec(ingress=[{"cidr": "10.0.0.1"}]), "ingress[0].cidr"),
    (
        "ingress-port-range-reversed",
        raw_spec(ingress=[{"cidr": "0.0.0.0/0", "ports": ["90-80"]}]),
        "ingress[0].ports[0]",
    ),
    ("ingress-port-garbage", raw_spec(ingress=[{"cidr": "0.0.0.0/0", "ports": ["http"]}]), "ingress[0].ports[0]"),
    ("ingress-port-zero", raw_spec(ingress=[{"cidr": "0.0.0.0/0", "ports": [80, 0]}]), "ingress[0].ports[1]"),
    ("egress-protocol", raw_spec(egress=[{"cidr": "0.0.0.0/0", "protocol": "ICMP"}]), "egress[0].protocol"),
    (
        "egress-all-with-ports",
        raw_spec(egress=[{"cidr": "0.0.0.0/0", "protocol": "ALL", "ports": [80]}]),
        "egress[0].ports",
    ),
    ("egress-unknown-field", raw_spec(egress=[{"cidr": "0.0.0.0/0", "action": "deny"}]), "egress[0].action"),
    ("deadline-zero", raw_spec(activeDeadlineSeconds=0), "activeDeadlineSeconds"),
    ("deadline-string", raw_spec(activeDeadlineSeconds="60"), "activeDeadlineSeconds"),
    ("deadline-too-long", raw_spec(activeDeadlineSeconds=10**9), "activeDeadlineSeconds"),
    ("token-empty", raw_spec(clientToken=""), "clientToken"),
    ("token-space", raw_spec(clientToken="a b"), "clientToken"),
    ("token-long", raw_spec(clientToken="x" * 65), "clientToken"),
    (
        "text-budget",
        {"containers": [container(f"c{i}", args=["x" * 30000]) for i in range(9)]},
        "containers[8].args",
    ),
]


@pytest.mark.parametrize(("body", "field"), [(b, f) for _, b, f in INVALID], ids=[i for i, _, _ in INVALID])
def test_invalid_input_names_the_field(body: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_spec(body)
    assert err.value.field == field, err.value.message
    assert err.value.to_json()["error"]["field"] == field


VALID: list[tuple[str, dict[str, Any]]] = [
    ("image-plain", c(image="nginx")),
    ("image-library-path", c(image="library/nginx:1.27-alpine")),
    ("image-localhost-port", c(image="localhost:5000/app")),
    ("image-digest-only", c(image=f"nginx@{SHA}")),
    ("image-underscores", c(image="my_org/my__app")),
    ("env-dotted-name", c(env=[{"name": "spring.profiles.active", "value": "x"}])),
    ("ipv6-cidr", raw_spec(ingress=[{"cidr": "2001:db8::/32", "ports": [443]}])),
    ("empty-egress", raw_spec(egress=[])),
    ("nulls-are-absent", raw_spec(name=None, labels=None, region=None)),
    ("sixty-containers", {"containers": TOO_MANY[:60]}),
    ("token-symbols", raw_spec(clientToken="!~token#1")),
]


@pytest.mark.parametrize("body", [b for _, b in VALID], ids=[i for i, _ in VALID])
def test_valid_specs_round_trip(body: dict[str, Any]) -> None:
    spec = parse_spec(body)
    assert isinstance(spec, InstanceSpec)
    assert spec_from_json(json.loads(json.dumps(spec.to_json())), secret_data(spec)) == spec
