from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from cis.domain.ids import TenantName
from cis.domain.pods import (
    PodSettings,
    container_allocations,
    default_egress_policy,
    env_secret_manifest,
    instance_manifests,
    instance_network_policy,
    namespace_manifest,
    owned_by_pod,
    pod_manifest,
    pull_secret_manifest,
    tenant_manifests,
    tenant_network_policy,
)
from cis.domain.sizes import parse_cpu, parse_memory

from .builders import INSTANCE_ID, container, make_instance, raw_spec
from .test_spec import FULL

SPECS: list[tuple[str, dict[str, Any]]] = [
    ("minimal", raw_spec()),
    ("full", FULL),
    ("never-with-deadline", raw_spec(restartPolicy="Never", activeDeadlineSeconds=60)),
    (
        "three-containers",
        {"containers": [container(n, resources={"cpu": 0.3, "memoryGiB": 0.3}) for n in "abc"]},
    ),
    ("big", raw_spec(containers=[container(resources={"cpu": 15, "memoryGiB": 100})])),
]
IDS = [i for i, _ in SPECS]
BODIES = [b for _, b in SPECS]


@pytest.mark.parametrize("body", BODIES, ids=IDS)
def test_pod_security_invariants(body: dict[str, Any]) -> None:
    pod = pod_manifest(make_instance(body))
    spec = pod["spec"]
    assert pod["metadata"]["name"] == INSTANCE_ID
    assert pod["metadata"]["namespace"] == "tenant-acme"
    assert spec["runtimeClassName"] == "kata"
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert spec["hostNetwork"] is False and spec["hostPID"] is False and spec["hostIPC"] is False
    assert "volumes" not in spec  # hence no hostPath, no projected token
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in spec["containers"]:
        sc = c["securityContext"]
        assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert not {"NET_RAW", "SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE"} & set(sc["capabilities"]["add"])
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert c["resources"]["requests"] == c["resources"]["limits"]  # Guaranteed QoS
        assert "volumeMounts" not in c
    text = json.dumps(pod)
    assert "hunter2" not in text and "s3cret" not in text


@pytest.mark.parametrize("body", BODIES, ids=IDS)
def test_container_resources_sum_to_the_rounded_size(body: dict[str, Any]) -> None:
    inst = make_instance(body)
    containers = pod_manifest(inst)["spec"]["containers"]
    cpu = sum(parse_cpu(c["resources"]["limits"]["cpu"]) for c in containers)
    memory = sum(parse_memory(c["resources"]["limits"]["memory"]) for c in containers)
    assert cpu == inst.size.cpu_millis and memory == inst.size.memory_bytes
    for alloc, c in zip(container_allocations(inst), inst.spec.containers, strict=True):
        assert alloc[0] >= c.resources.cpu_millis and alloc[1] >= c.resources.memory_mib


def test_labels_annotations_and_settings() -> None:
    settings = PodSettings(
        runtime_class_name="kata-fc",
        termination_grace_period_seconds=5,
        node_selector={"type": "kwok"},
        tolerations=({"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"},),
    )
    pod = pod_manifest(make_instance(raw_spec(zone="eu-west-1a")), settings)
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["labels"] == {
        "cis.io/instance": INSTANCE_ID,
        "cis.io/tenant": "acme",
        "cis.io/managed-by": "cis",
        "cis.io/egress": "default",
    }
    assert meta["annotations"]["cis.io/instance-uid"] == "uid-1"
    assert spec["runtimeClassName"] == "kata-fc" and spec["terminationGracePeriodSeconds"] == 5
    assert spec["nodeSelector"] == {"type": "kwok", "topology.kubernetes.io/zone": "eu-west-1a"}
    assert spec["tolerations"][0]["key"] == "kwok.x-k8s.io/node"


def test_full_spec_pod_fields() -> None:
    spec = pod_manifest(make_instance(FULL))["spec"]
    assert spec["restartPolicy"] == "OnFailure" and spec["activeDeadlineSeconds"] == 3600
    assert spec["imagePullSecrets"] == [{"name": f"{INSTANCE_ID}-pull"}]
    web = spec["containers"][0]
    assert web["command"] == ["/bin/server"] and web["args"] == ["--port", "8080"]
    assert web["ports"] == [
        {"containerPort": 8080, "protocol": "TCP"},
        {"containerPort": 53, "protocol": "UDP"},
    ]
    assert web["env"][0] == {"name": "MODE", "value": "prod"}
    assert web["env"][2]["valueFrom"]["secretKeyRef"] == {
        "name": f"{INSTANCE_ID}-env",
        "key": "env.web.DB_PASSWORD",
    }


def decode(secret: dict[str, Any], key: str) -> str:
    return base64.b64decode(secret["data"][key]).decode()


def test_secrets() -> None:
    inst = make_instance(FULL)
    env = env_secret_manifest(inst)
    assert env is not None and env["type"] == "Opaque"
    assert decode(env, "env.web.DB_PASSWORD") == "hunter2"
    pull = pull_secret_manifest(inst)
    assert pull is not None and pull["type"] == "kubernetes.io/dockerconfigjson"
    auths = json.loads(decode(pull, ".dockerconfigjson"))["auths"]
    entry = auths["registry.example:5000"]
    assert entry["username"] == "bot" and entry["password"] == "s3cret"
    assert base64.b64decode(entry["auth"]).decode() == "bot:s3cret"
    assert env_secret_manifest(make_instance()) is None
    assert pull_secret_manifest(make_instance()) is None


def test_manifests_order_pod_last() -> None:
    kinds = [m["kind"] for m in instance_manifests(make_instance(FULL))]
    assert kinds == ["Secret", "Secret", "NetworkPolicy", "Pod"]
    # Default rules: the tenant's policies cover it, no policy of its own.
    assert [m["kind"] for m in instance_manifests(make_instance())] == ["Pod"]


def test_owned_by_pod_copies() -> None:
    np = instance_network_policy(make_instance(FULL))
    assert np is not None
    owned = owned_by_pod(np, INSTANCE_ID, "pod-uid")
    assert owned["metadata"]["ownerReferences"][0] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": INSTANCE_ID,
        "uid": "pod-uid",
    }
    assert "ownerReferences" not in np["metadata"]


def test_tenant_isolation_policy() -> None:
    policy = tenant_network_policy(TenantName("acme"))
    spec = policy["spec"]
    assert policy["metadata"]["namespace"] == "tenant-acme"
    assert spec["podSelector"] == {} and spec["policyTypes"] == ["Ingress", "Egress"]
    # only same-namespace peers, never a namespaceSelector that could match another tenant
    assert spec["ingress"] == [{"from": [{"podSelector": {}}]}]
    assert spec["egress"][0] == {"to": [{"podSelector": {}}]}
    dns = spec["egress"][1]
    assert dns["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
    assert {p["port"] for p in dns["ports"]} == {53}
    ns = namespace_manifest(TenantName("acme"))
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"


def test_default_egress_is_the_tenants_policy_and_blocks_private_ranges() -> None:
    assert instance_network_policy(make_instance()) is None
    assert pod_manifest(make_instance())["metadata"]["labels"]["cis.io/egress"] == "default"
    policy = default_egress_policy(TenantName("acme"))
    assert policy["metadata"] == {"name": "cis-default-egress", "namespace": "tenant-acme",
                                  "labels": {"cis.io/tenant": "acme", "cis.io/managed-by": "cis"}}
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {"cis.io/egress": "default"}}
    assert spec["policyTypes"] == ["Egress"] and "ingress" not in spec
    v4, v6 = (peer["ipBlock"] for peer in spec["egress"][0]["to"])
    assert v4["cidr"] == "0.0.0.0/0" and "169.254.0.0/16" in v4["except"] and "10.0.0.0/8" in v4["except"]
    assert v6["cidr"] == "::/0" and "fc00::/7" in v6["except"]
    kinds = [(m["kind"], m["metadata"]["name"]) for m in tenant_manifests(TenantName("acme"))]
    assert kinds == [("Namespace", "tenant-acme"), ("NetworkPolicy", "cis-tenant-isolation"),
                     ("NetworkPolicy", "cis-default-egress")]


def test_only_ingress_rules_keep_default_egress() -> None:
    inst = make_instance(raw_spec(ingress=[{"cidr": "203.0.113.0/24", "ports": [443]}]))
    policy = instance_network_policy(inst)
    assert policy is not None
    assert policy["spec"]["policyTypes"] == ["Ingress"] and "egress" not in policy["spec"]
    assert pod_manifest(inst)["metadata"]["labels"]["cis.io/egress"] == "default"


def test_own_egress_leaves_the_default_egress_policy() -> None:
    inst = make_instance(raw_spec(egress=[]))
    assert "cis.io/egress" not in pod_manifest(inst)["metadata"]["labels"]


def test_instance_policy_rules() -> None:
    policy = instance_network_policy(make_instance(FULL))
    assert policy is not None
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [
        {
            "from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
            "ports": [
                {"protocol": "TCP", "port": 8080},
                {"protocol": "TCP", "port": 9000, "endPort": 9100},
            ],
        }
    ]
    assert spec["egress"] == [
        {"to": [{"ipBlock": {"cidr": "10.1.0.0/16"}}]},  # ALL: no ports key
        {"to": [{"ipBlock": {"cidr": "2001:db8::/32"}}], "ports": [{"protocol": "UDP"}]},
    ]
    closed = instance_network_policy(make_instance(raw_spec(egress=[])))
    assert closed is not None and closed["spec"]["egress"] == []
