"""The virtual kubelet (`cis-vk`) on the real local stack: it registers a node in the user
cluster under the node identity system:node:<name> (Node authorization and NodeRestriction
apply), runs that cluster's Deployments and Jobs as CIS instances through CIS's gRPC API,
and serves the kubelet API on :10250 to the apiserver.

Runs as its own process, started with a certificate from the stack's CA, as an operator
would run it. Tests run in file order and share the provider; the restart test comes last.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest

from cis.devstack.cluster import Cluster
from cis.devstack.pki import CertPair
from cis.devstack.platform import CisProcess, cluster_pods, create_tenant, start_virtual_kubelet
from cis.devstack.processes import Process
from cis.devstack.stack import Stack
from kubeio.quantity import parse_quantity
from tests.integration.helpers import Client, wait_for

NODE = "cis-vk-it"
NS = "vk-it"
REPLICAS = 50
LABEL_NODE = "virtual-kubelet.io/node"


@dataclass
class VirtualKubelet:
    process: Process
    cis: Client
    ip: str
    port: int
    user: Cluster

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return self.user.kubectl(*args, stdin=stdin)

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def pods(self, selector: str = "") -> list[dict[str, Any]]:
        args = ["get", "pods", "-n", NS, f"--field-selector=spec.nodeName={NODE}"]
        return list(self.json(*args, *(["-l", selector] if selector else []))["items"])

    def instances(self) -> list[dict[str, Any]]:
        """This node's CIS instances that are not on their way out."""
        items = self.cis.list_all(f"labels={LABEL_NODE}%3D{NODE}")
        return [i for i in items if i["status"].get("phase") != "Deleting"]

    def events(self, pod: str) -> list[str]:
        items = self.json("get", "events", "-n", NS, f"--field-selector=involvedObject.name={pod}")["items"]
        return [e["reason"] for e in items]

    def node_ready(self) -> bool:
        node = self.json("get", "node", NODE)
        return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])

    def start(self) -> None:
        self.process.start()
        self.process.wait_ready(self.node_ready, 90, "node Ready")


def running(pods: list[dict[str, Any]]) -> int:
    return sum(
        1 for p in pods if p.get("status", {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    )


@pytest.fixture(scope="module")
def vk(stack: Stack, cis: CisProcess) -> Iterator[VirtualKubelet]:
    key = create_tenant(
        cis,
        "vk-it",
        quota={"maxInstances": 1000, "maxVcpu": 1000, "maxMemoryGiB": 4000},
        createBurst=1000,
        createRatePerSecond=500,
    )
    ip = f"127.{stack.settings.net}.1.2"
    stack.user.kubectl("create", "namespace", NS)
    proc = start_virtual_kubelet(stack, cis, key, node=NODE)
    v = VirtualKubelet(proc, Client(cis, key), ip, 10250, stack.user)
    proc.wait_ready(v.node_ready, 90, "node Ready")
    try:
        yield v
    finally:
        proc.stop()
        stack.user.kubectl("delete", "namespace", NS, "--wait=false")
        stack.user.kubectl("delete", "node", NODE, "--wait=false")


def deployment(name: str, replicas: int) -> str:
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "nodeSelector": {"kubernetes.io/hostname": NODE},
                        "tolerations": [
                            {"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}
                        ],
                        "containers": [
                            {
                                "name": "web",
                                "image": "nginx:1.27",
                                "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
                            }
                        ],
                    },
                },
            },
        }
    )


def bare_pod(
    name: str,
    env: list[dict[str, Any]] | None = None,
    env_from: list[dict[str, Any]] | None = None,
    extra_env: list[dict[str, Any]] | None = None,
) -> str:
    container: dict[str, Any] = {"name": "main", "image": "busybox:1.36", "env": (env or []) + (extra_env or [])}
    if env_from:
        container["envFrom"] = env_from
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "nodeName": NODE,
                "automountServiceAccountToken": False,
                "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
                "containers": [container],
            },
        }
    )


# --- the node ---------------------------------------------------------------------------------


def test_node_registers_ready_with_a_renewing_lease(vk: VirtualKubelet) -> None:
    node = vk.json("get", "node", NODE)
    labels, status = node["metadata"]["labels"], node["status"]
    assert labels["type"] == "virtual-kubelet" and labels["kubernetes.io/hostname"] == NODE
    assert labels["kubernetes.io/os"] == "linux"
    assert {"key": "virtual-kubelet.io/provider", "value": "cis", "effect": "NoSchedule"} in node["spec"]["taints"]
    assert {"type": "InternalIP", "address": vk.ip} in status["addresses"]
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250
    assert parse_quantity(status["allocatable"]["pods"]) >= 1000  # the apiserver writes 10000 as "10k"
    # NodeRestriction keeps a node from giving itself kubernetes.io/role; an admin can.
    vk.kubectl("label", "node", NODE, "kubernetes.io/role=agent", "--overwrite")
    lease = vk.json("get", "lease", "-n", "kube-node-lease", NODE)
    assert (lease["spec"]["holderIdentity"], lease["spec"]["leaseDurationSeconds"]) == (NODE, 40)
    assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]
    first = lease["spec"]["renewTime"]
    wait_for(
        "the lease to be renewed",
        lambda: vk.json("get", "lease", "-n", "kube-node-lease", NODE)["spec"]["renewTime"] != first,
        25,
        every=1,
    )


def _get(url: str, ctx: ssl.SSLContext) -> int:
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_kubelet_api_refuses_anonymous_and_serves_the_apiserver(vk: VirtualKubelet, stack: Stack) -> None:
    url = f"https://{vk.ip}:{vk.port}/pods"
    anonymous = ssl.create_default_context(cafile=str(stack.pki.pair.cert))
    assert _get(url, anonymous) == 401
    kubelet_client: CertPair = stack.user.kubelet_client
    apiserver = ssl.create_default_context(cafile=str(stack.pki.pair.cert))
    apiserver.load_cert_chain(str(kubelet_client.cert), str(kubelet_client.key))
    assert _get(url, apiserver) == 200
    # (nodes/proxy refuses loopback node addresses; `kubectl logs` below goes the apiserver's
    # kubelet path for real.)


# --- workloads ----------------------------------------------------------------------------------


def test_deployment_scales_up_and_down_with_one_instance_per_pod(vk: VirtualKubelet) -> None:
    vk.kubectl("apply", "-f", "-", stdin=deployment("web", 0))
    for replicas in (REPLICAS, 0):
        vk.kubectl("scale", "deployment/web", "-n", NS, f"--replicas={replicas}")
        t0 = time.monotonic()

        def pods_running(r: int = replicas) -> bool:
            pods = vk.pods("app=web")
            return len(pods) == r and running(pods) == r

        def instances_match(r: int = replicas) -> bool:
            return len(vk.instances()) == r

        wait_for(f"{replicas} Running pods", pods_running, 240, every=2)
        wait_for(f"{replicas} instances", instances_match, 120, every=2)
        assert len(vk.pods("app=web")) == len(vk.instances()) == replicas
        print(f"scaled to {replicas} in {time.monotonic() - t0:.1f}s")


def test_pod_status_comes_from_cis(vk: VirtualKubelet) -> None:
    vk.kubectl("scale", "deployment/web", "-n", NS, "--replicas=1")
    pod = wait_for("a Running pod", lambda: next((p for p in vk.pods("app=web") if running([p])), None), 120)
    status = pod["status"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"PodScheduled": "True", "Initialized": "True", "ContainersReady": "True", "Ready": "True"}
    (container,) = status["containerStatuses"]
    assert container["ready"] and "running" in container["state"] and container["image"] == "nginx:1.27"
    assert container["containerID"].startswith("cis://ci-")
    assert status["hostIP"] == vk.ip and status["podIP"] and status["startTime"]
    assert "ProviderCreateSuccess" in vk.events(pod["metadata"]["name"])


def _cri(t: datetime, message: str) -> str:
    return f"{t.strftime('%Y-%m-%dT%H:%M:%S.%f')}000Z stdout F {message}\n"


def _write_instance_log(stack: Stack, inst: dict[str, Any], container: str, lines: list[str]) -> None:
    """Lines "written by" the instance's container, where the stack's Filebeat reads them."""
    cluster = stack.clusters[inst["status"]["cluster"]]
    pod = cluster_pods(cluster, f"tenant-{inst['tenant']}", f"cis.io/instance={inst['id']}")[0]
    d = stack.pod_logs_dir / f"tenant-{inst['tenant']}_{inst['id']}_{pod['metadata']['uid']}" / container
    d.mkdir(parents=True, exist_ok=True)
    with (d / "0.log").open("a") as f:
        f.write("".join(lines))


def test_kubectl_logs_through_the_apiserver(vk: VirtualKubelet, stack: Stack) -> None:
    pod = next(p for p in vk.pods("app=web") if running([p]))
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    inst = next(i for i in vk.instances() if i["labels"].get("virtual-kubelet.io/pod-uid") == uid)
    t0 = datetime.now(UTC) - timedelta(seconds=20)
    _write_instance_log(stack, inst, "web", [_cri(t0 + timedelta(seconds=i), f"line {i}") for i in range(5)])
    wait_for("5 lines through kubectl logs", lambda: vk.kubectl("logs", "-n", NS, name).count("\n") == 5, 90, every=1)
    assert vk.kubectl("logs", "-n", NS, name, "--tail=2").splitlines() == ["line 3", "line 4"]
    assert vk.kubectl("logs", "-n", NS, name, "--since=1h").splitlines() == [f"line {i}" for i in range(5)]
    assert vk.kubectl("logs", "-n", NS, name, "--tail=1", "--timestamps").endswith(" line 4\n")


class LogFollower:
    """`kubectl logs -f` run as a user runs it; a thread collects its stdout lines."""

    def __init__(self, vk: VirtualKubelet, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(vk.user.bins.kubectl), f"--kubeconfig={vk.user.kubeconfig}", "logs", "-f", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
        )
        self.lines: list[str] = []
        self._stderr: str | None = None
        self._reader = threading.Thread(target=self._read, name="kubectl-logs-f", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def has(self, *wanted: str) -> bool:
        return all(w in self.lines for w in wanted)

    def exited(self) -> bool:
        return self.proc.poll() is not None

    def stop(self) -> str:
        """Stop it (a client going away) and return its stderr; again, the same stderr."""
        if self._stderr is None:
            if self.proc.poll() is None:
                self.proc.terminate()
            self.proc.wait(timeout=30)
            self._reader.join(timeout=10)
            assert self.proc.stdout is not None and self.proc.stderr is not None
            self._stderr = self.proc.stderr.read()
            self.proc.stdout.close()
            self.proc.stderr.close()
        return self._stderr


def test_kubectl_logs_follow_delivers_new_lines(vk: VirtualKubelet, stack: Stack) -> None:
    pod = next(p for p in vk.pods("app=web") if running([p]))
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    inst = next(i for i in vk.instances() if i["labels"].get("virtual-kubelet.io/pod-uid") == uid)
    follower = LogFollower(vk, "-n", NS, name)
    try:
        wait_for("the lines so far", lambda: follower.has("line 4") or follower.exited(), 90, every=0.5)
        assert not follower.exited(), follower.stop()
        for n in range(3):
            _write_instance_log(stack, inst, "web", [_cri(datetime.now(UTC), f"followed {n}")])
            # Filebeat reads an idle file at most every 10 s, then ships within a second or two.
            wait_for(f"line {n} through kubectl logs -f", partial(follower.has, f"followed {n}"), 120, every=0.5)
        assert not follower.exited()
    finally:
        stderr = follower.stop()
    assert follower.lines[-3:] == ["followed 0", "followed 1", "followed 2"], stderr
    assert follower.lines.count("line 0") == 1  # nothing delivered twice


def test_kubectl_logs_follow_ends_when_the_container_ends(vk: VirtualKubelet, stack: Stack) -> None:
    raw = json.loads(bare_pod("follow-end", extra_env=[{"name": "KWOK_COMPLETE_AFTER", "value": "60s"}]))
    raw["spec"]["restartPolicy"] = "Never"
    vk.kubectl("apply", "-f", "-", stdin=json.dumps(raw))
    wait_for("follow-end Running", lambda: running([vk.json("get", "pod", "follow-end", "-n", NS)]) == 1, 120)
    uid = vk.json("get", "pod", "follow-end", "-n", NS)["metadata"]["uid"]
    inst = wait_for("its instance", lambda: next(
        (i for i in vk.instances() if i["labels"].get("virtual-kubelet.io/pod-uid") == uid), None), 60)
    _write_instance_log(stack, inst, "main", [_cri(datetime.now(UTC), "started")])
    wait_for("the first line", lambda: "started" in vk.kubectl("logs", "-n", NS, "follow-end"), 90, every=1)
    follower = LogFollower(vk, "-n", NS, "follow-end")
    try:
        # KWOK ends the container 60 s after it started; the follow ends after a drain.
        wait_for("kubectl logs -f to end by itself", follower.exited, 240, every=1)
    finally:
        stderr = follower.stop()
    assert (follower.proc.returncode, follower.lines) == (0, ["started"]), stderr
    assert vk.json("get", "pod", "follow-end", "-n", NS)["status"]["phase"] == "Succeeded"
    vk.kubectl("delete", "pod", "follow-end", "-n", NS, "--wait=false")
    wait_for("its instance gone", lambda: not [
        i for i in vk.cis.list_all(f"labels={LABEL_NODE}%3D{NODE}")
        if i["labels"].get("virtual-kubelet.io/pod-uid") == uid], 90, every=2)


def test_exec_is_refused_clearly(vk: VirtualKubelet) -> None:
    pod = next(p for p in vk.pods("app=web") if running([p]))["metadata"]["name"]
    with pytest.raises(RuntimeError) as refused:
        vk.kubectl("exec", "-n", NS, pod, "--", "true")
    assert "exec is not supported by CIS instances" in str(refused.value)


def test_deleting_the_deployment_deletes_its_instances(vk: VirtualKubelet) -> None:
    wait_for("an instance", lambda: len(vk.instances()) == 1, 60)
    vk.kubectl("delete", "deployment/web", "-n", NS, "--wait=false")
    wait_for("no pods", lambda: not vk.pods("app=web"), 60)
    wait_for("no instances", lambda: not vk.cis.list_all(f"labels={LABEL_NODE}%3D{NODE}"), 60)


def test_a_job_completes(vk: VirtualKubelet) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "quick", "namespace": NS},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "nodeSelector": {"kubernetes.io/hostname": NODE},
                    "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
                    # CIS's KWOK-backed clusters end containers asking for it after that delay.
                    "containers": [
                        {
                            "name": "main",
                            "image": "busybox:1.36",
                            "command": ["true"],
                            "env": [{"name": "KWOK_COMPLETE_AFTER", "value": "2s"}],
                        }
                    ],
                }
            },
        },
    }
    vk.kubectl("apply", "-f", "-", stdin=json.dumps(job))
    wait_for(
        "the Job Complete",
        lambda: any(
            c["type"] == "Complete" and c["status"] == "True"
            for c in vk.json("get", "job", "quick", "-n", NS)["status"].get("conditions", [])
        ),
        120,
        every=1,
    )
    (pod,) = vk.pods("job-name=quick")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (pod["status"]["phase"], terminated["exitCode"]) == ("Succeeded", 0)
    vk.kubectl("delete", "job", "quick", "-n", NS, "--cascade=foreground", "--wait=false")


def cronjob(name: str) -> str:
    return json.dumps({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "schedule": "*/1 * * * *",  # every minute, the finest cron allows
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {"metadata": {"labels": {"cron": name}}, "spec": {
                "backoffLimit": 0,
                "template": {
                    "metadata": {"labels": {"cron": name}},
                    "spec": {
                        "restartPolicy": "Never",
                        "automountServiceAccountToken": False,
                        "nodeSelector": {"kubernetes.io/hostname": NODE},
                        "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
                        "containers": [{
                            "name": "main",
                            "image": "busybox:1.36",
                            "command": ["date"],
                            "env": [{"name": "KWOK_COMPLETE_AFTER", "value": "2s"}],
                        }],
                    },
                },
            }},
        },
    })


def test_a_cronjob_runs_twice(vk: VirtualKubelet) -> None:
    """The user cluster's cronjob controller makes a Job a minute; each runs as a CIS instance."""
    uids: set[str] = set()

    def two_succeeded_jobs() -> list[str] | None:
        uids.update(p["metadata"]["uid"] for p in vk.pods("cron=tick"))
        jobs = vk.json("get", "jobs", "-n", NS, "-l", "cron=tick")["items"]
        names = [j["metadata"]["name"] for j in jobs if j.get("status", {}).get("succeeded", 0) >= 1]
        return names if len(names) >= 2 else None

    def our_instances() -> list[dict[str, Any]]:
        return [i for i in vk.cis.list_all(f"labels={LABEL_NODE}%3D{NODE}")
                if i["labels"].get("virtual-kubelet.io/pod-uid") in uids]

    vk.kubectl("apply", "-f", "-", stdin=cronjob("tick"))
    try:
        # The first run starts at the next minute boundary, the second a minute later.
        done = wait_for("two succeeded Jobs", two_succeeded_jobs, 240, every=3)
        assert all(name.startswith("tick-") for name in done)
        pods = vk.pods("cron=tick")
        assert sum(1 for p in pods if p["status"].get("phase") == "Succeeded") >= 2
        assert len(uids) >= 2 and len(our_instances()) >= 2  # one CIS instance per run
    finally:
        vk.kubectl("delete", "cronjob", "tick", "-n", NS, "--cascade=foreground", "--wait=false")
        vk.kubectl("delete", "jobs", "-n", NS, "-l", "cron=tick", "--cascade=foreground", "--wait=false")
    wait_for("no tick Jobs", lambda: not vk.json("get", "jobs", "-n", NS, "-l", "cron=tick")["items"], 120, every=2)
    wait_for("no tick pods", lambda: not vk.pods("cron=tick"), 120, every=2)
    wait_for("their instances gone", lambda: not our_instances(), 120, every=2)


def _secret_ref(name: str, optional: bool) -> dict[str, Any]:
    return {"name": "X", "valueFrom": {"secretKeyRef": {"name": name, "key": "k", "optional": optional}}}


def _cm_ref(name: str, optional: bool) -> dict[str, Any]:
    return {"name": "X", "valueFrom": {"configMapKeyRef": {"name": name, "key": "k", "optional": optional}}}


@pytest.mark.parametrize(
    ("pod", "env", "reason", "starts"),
    [
        ("mand-secret", _secret_ref("absent-secret", False), "MandatorySecretNotFound", False),
        ("opt-secret", _secret_ref("absent-secret", True), "OptionalSecretNotFound", True),
        ("mand-cm", _cm_ref("absent-cm", False), "MandatoryConfigMapNotFound", False),
        ("opt-cm", _cm_ref("absent-cm", True), "OptionalConfigMapNotFound", True),
    ],
    ids=["mandatory-secret", "optional-secret", "mandatory-configmap", "optional-configmap"],
)
def test_missing_references(vk: VirtualKubelet, pod: str, env: dict[str, Any], reason: str, starts: bool) -> None:
    vk.kubectl("apply", "-f", "-", stdin=bare_pod(pod, [env]))
    wait_for(f"event {reason}", lambda: reason in vk.events(pod), 60)
    if starts:
        wait_for(f"{pod} Running", lambda: running([vk.json("get", "pod", pod, "-n", NS)]) == 1, 60)
    else:
        time.sleep(3)  # a few retries' worth: it must still not reach CIS
        got = vk.json("get", "pod", pod, "-n", NS)
        waiting = got["status"]["containerStatuses"][0]["state"]["waiting"]
        assert (got["status"]["phase"], waiting["reason"]) == ("Pending", "CreateContainerConfigError")
        uid = got["metadata"]["uid"]
        assert not [i for i in vk.instances() if i["labels"].get("virtual-kubelet.io/pod-uid") == uid]
    vk.kubectl("delete", "pod", pod, "-n", NS, "--wait=false")


def test_a_mandatory_reference_that_appears_later_lets_the_pod_start(vk: VirtualKubelet) -> None:
    vk.kubectl("apply", "-f", "-", stdin=bare_pod("late-secret", [_secret_ref("late", False)]))
    wait_for("MandatorySecretNotFound", lambda: "MandatorySecretNotFound" in vk.events("late-secret"), 60)
    vk.kubectl("create", "secret", "generic", "late", "-n", NS, "--from-literal=k=v")
    wait_for("late-secret Running", lambda: running([vk.json("get", "pod", "late-secret", "-n", NS)]) == 1, 120)
    vk.kubectl("delete", "pod", "late-secret", "-n", NS, "--wait=false")


# --- restarts (last: it stops the shared provider) ------------------------------------------------


def test_kill_and_restart_neither_duplicates_nor_loses_pods(vk: VirtualKubelet) -> None:
    vk.kubectl("apply", "-f", "-", stdin=deployment("steady", 5))
    wait_for("5 Running", lambda: running(vk.pods("app=steady")) == 5, 120, every=1)
    wait_for("no leftovers", lambda: len(vk.instances()) == 5, 120, every=1)
    before = {i["labels"]["virtual-kubelet.io/pod-uid"]: i["id"] for i in vk.instances()}
    vk.process.stop(grace=0)  # SIGTERM then SIGKILL at once
    victim = vk.pods("app=steady")[0]["metadata"]["name"]
    vk.kubectl("delete", "pod", victim, "-n", NS, "--wait=false")  # graceful: waits for the kubelet
    vk.kubectl("scale", "deployment/steady", "-n", NS, "--replicas=7")
    vk.start()

    def settled() -> bool:
        pods = vk.pods("app=steady")
        return len(pods) == 7 and running(pods) == 7 and len(vk.instances()) == 7

    wait_for("7 Running pods with 7 instances", settled, 180, every=2)
    after = {i["labels"]["virtual-kubelet.io/pod-uid"]: i["id"] for i in vk.instances()}
    kept = set(before) & set(after)
    assert len(kept) == 4, "the four untouched pods keep their instances"
    assert all(before[uid] == after[uid] for uid in kept)
    assert len(set(after.values())) == 7
    vk.kubectl("delete", "deployment/steady", "-n", NS, "--wait=false")
    wait_for("no instances", lambda: not vk.cis.list_all(f"labels={LABEL_NODE}%3D{NODE}"), 90, every=2)
