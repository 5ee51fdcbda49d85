"""The local stack is made of the real components and they behave as Kubernetes,
Elasticsearch and Filebeat do in production."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from cis.devstack.cluster import Cluster
from cis.devstack.stack import Stack


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0,
             explain: Callable[[], str] | None = None) -> Any:
    """Poll `check` until true; on timeout, fail with what `explain` reports."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                                 + (f"\n{explain()}" if explain else ""))
        time.sleep(0.3)


def kubectl_json(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl(*args, "-o", "json"))


def test_kubectl_talks_to_every_cluster_with_the_built_version(stack: Stack) -> None:
    for cluster in stack.clusters.values():
        version = json.loads(cluster.kubectl("version", "-o", "json"))
        assert version["clientVersion"]["gitVersion"] == "v1.36.3"
        assert version["serverVersion"]["gitVersion"] == "v1.36.3"
        assert version["serverVersion"]["gitTreeState"] == "clean"


def test_backing_nodes_are_kata_capable_and_ready(stack: Stack) -> None:
    for cluster in stack.backing:
        nodes = kubectl_json(cluster, "get", "nodes", "-l", "katacontainers.io/kata-runtime=true")
        assert len(nodes["items"]) == stack.settings.kwok_nodes
        for node in nodes["items"]:
            ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
            assert ready == "True"
            assert node["metadata"]["labels"]["topology.kubernetes.io/region"] == cluster.spec.region


def test_deployment_lands_on_kwok_nodes_and_becomes_ready(stack: Stack) -> None:
    cluster = stack.backing[0]
    cluster.kubectl("create", "namespace", "deploy-test")
    cluster.kubectl("-n", "deploy-test", "create", "deployment", "web", "--image=nginx:1.27",
                    "--replicas=3")
    def available() -> bool:
        dep = kubectl_json(cluster, "-n", "deploy-test", "get", "deployment", "web")
        return bool(dep.get("status", {}).get("readyReplicas") == 3)
    wait_for("3 ready replicas", available, 90, explain=lambda: cluster.kubectl(
        "-n", "deploy-test", "get", "deployments,replicasets,pods,events", "-o", "wide"))
    pods = kubectl_json(cluster, "-n", "deploy-test", "get", "pods")["items"]
    assert {p["spec"]["nodeName"] for p in pods} <= {f"{cluster.spec.name}-node-{i}" for i in range(2)}
    assert all(p["status"]["podIP"] for p in pods)
    cluster.kubectl("delete", "namespace", "deploy-test", "--wait=false")


def test_job_pods_complete_after_the_requested_delay(stack: Stack) -> None:
    cluster = stack.backing[1]
    job = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "sleepy", "namespace": "default"},
        "spec": {"template": {
            "metadata": {"annotations": {
                "pod-complete.stage.kwok.x-k8s.io/delay": "4s",
                "pod-complete.stage.kwok.x-k8s.io/jitter-delay": "4s",
            }},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]},
        }},
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(job))
    done = wait_for("job completion", lambda: kubectl_json(
        cluster, "get", "job", "sleepy").get("status", {}).get("succeeded") == 1, 60)
    assert done
    pod = kubectl_json(cluster, "get", "pods", "-l", "job-name=sleepy")["items"][0]
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    # KWOK's completion stage stamps the container's startedAt anew; the pod's startTime
    # is when it started running.
    running_for = _seconds(term["finishedAt"]) - _seconds(pod["status"]["startTime"])
    assert term["exitCode"] == 0
    # Kubernetes timestamps have one-second precision.
    assert 3 <= running_for <= 6, running_for


def _seconds(rfc3339: str) -> float:
    return time.mktime(time.strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ"))


def _pod(name: str, runtime_class: str) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
        "spec": {"runtimeClassName": runtime_class, "containers": [{
            "name": "c", "image": "busybox",
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                          "limits": {"cpu": "500m", "memory": "1Gi"}},
        }]},
    })


def test_kata_runtime_class_adds_overhead_and_node_selector(stack: Stack) -> None:
    cluster = stack.backing[0]
    cluster.kubectl("apply", "-f", "-", stdin=_pod("kata-pod", "kata"))
    pod = kubectl_json(cluster, "get", "pod", "kata-pod")
    assert pod["spec"]["overhead"] == {"cpu": "250m", "memory": "160Mi"}
    assert pod["spec"]["nodeSelector"]["katacontainers.io/kata-runtime"] == "true"
    wait_for("kata pod running", lambda: kubectl_json(
        cluster, "get", "pod", "kata-pod")["status"].get("phase") == "Running", 60)


def test_unknown_runtime_class_is_rejected(stack: Stack) -> None:
    cluster = stack.backing[0]
    with pytest.raises(RuntimeError, match='RuntimeClass "gvisor" not found'):
        cluster.kubectl("apply", "-f", "-", stdin=_pod("gvisor-pod", "gvisor"))


def test_kubectl_logs_reaches_the_node_kubelet_through_the_apiserver(stack: Stack) -> None:
    # `kubectl logs` goes apiserver -> node InternalIP:kubeletEndpoint with the apiserver's
    # kubelet-client certificate. KWOK answers as the nodes' kubelet, serving a log file.
    cluster = stack.backing[0]
    cluster.kubectl("run", "logme", "--image=busybox", "--restart=Never")
    wait_for("logme running", lambda: kubectl_json(cluster, "get", "pod", "logme")["status"].get("phase")
             == "Running", 60)
    out = cluster.kubectl("logs", "logme")
    assert out.strip() == f"hello from the kwok kubelet of {cluster.spec.name}"


def test_node_proxy_to_loopback_is_refused_as_in_upstream(stack: Stack) -> None:
    # Kubernetes 1.36 refuses nodes/proxy to non-global addresses; pods/log is not subject
    # to that check, which is why the local stack can serve `kubectl logs` on 127.x.
    cluster = stack.backing[0]
    with pytest.raises(RuntimeError, match="address not allowed"):
        cluster.kubectl("get", "--raw", f"/api/v1/nodes/{cluster.spec.name}-node-0/proxy/healthz")


def test_elasticsearch_client_indexes_and_searches(stack: Stack) -> None:
    es = Elasticsearch(stack.es_url)
    try:
        es.index(index="smoke", id="1", document={"msg": "hello elastic"}, refresh="wait_for")
        hits = es.search(index="smoke", query={"match": {"msg": "hello"}})["hits"]["hits"]
        assert [h["_id"] for h in hits] == ["1"]
        # The minimal distribution has no `GET /` (no rest-root module); ask the node itself.
        nodes = es.nodes.info(node_id="_local")["nodes"]
        assert [n["version"] for n in nodes.values()] == ["8.19.21"]
    finally:
        es.close()


def test_filebeat_ships_lines_once_even_after_its_registry_is_wiped(stack: Stack) -> None:
    """The stack's Filebeat ships lifecycle events by their deterministic id."""
    es = Elasticsearch(stack.es_url)
    events = [
        {"@timestamp": f"2026-11-21T10:00:0{i}.000Z",
         "event": {"id": f"smoke-{i}", "kind": "instance.created", "seq": i},
         "instance": {"id": "ci-smoke", "uid": "u-smoke", "tenant": "smoke"}}
        for i in range(5)
    ]
    path = stack.events_dir / "smoke.ndjson"
    # Padding makes the file longer than Filebeat's fingerprint window from the start.
    path.write_text("".join(json.dumps(e) + "\n" for e in events))

    def count() -> int:
        es.indices.refresh(index="cis-events-*", ignore_unavailable=True, allow_no_indices=True)
        return int(es.count(index="cis-events-*", query={"term": {"instance.id": "ci-smoke"}})["count"])

    try:
        wait_for("5 events shipped", lambda: count() == 5, 60)
        assert stack.filebeat is not None
        stack.filebeat.stop()
        subprocess.run(["rm", "-rf", str(stack.run_dir / "filebeat" / "data" / "registry")], check=True)
        stack.filebeat.start()
        time.sleep(8)  # long enough for Filebeat to re-read and re-send the whole file
        with path.open("a") as f:
            f.write(json.dumps({**events[0], "event": {"id": "smoke-5", "kind": "instance.created",
                                                      "seq": 5}}) + "\n")
        wait_for("the appended event", lambda: count() == 6, 60)
        ids = sorted(h["_id"] for h in es.search(index="cis-events-*", size=20, query={
            "term": {"instance.id": "ci-smoke"}})["hits"]["hits"])
        assert ids == [f"smoke-{i}" for i in range(6)]
    finally:
        es.close()
