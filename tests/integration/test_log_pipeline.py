"""The log pipeline against a real Filebeat and Elasticsearch, with the configurations
`cis_logging` renders.

Uses the stack's Elasticsearch and Filebeat binary (`stack` fixture), or
`$CIS_TEST_ES_URL` (+ `$CIS_FILEBEAT` or the install cache) when set, so it runs beside a
hand-started Elasticsearch. Each module run starts its own root shim and two Filebeats
(pod logs, lifecycle events) over temporary directories, writes into uniquely prefixed
indices, and deletes them afterwards. Files are written in the kubelet's CRI format; no
kubelet is involved.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from elasticsearch import AsyncElasticsearch

from cis_logging.es_setup import ensure_layout
from cis_logging.layout import EsLayout
from cis_logging.lines import LogLine
from cis_logging.params import (
    EventsConfigParams,
    EventsParams,
    ManifestParams,
    NodeConfigParams,
    OutputParams,
    PodLogsParams,
)
from cis_logging.query import LogQuery
from cis_logging.reading import fetch_logs, follow_logs, instance_seen
from cis_logging.rendering import render_events_config, render_manifests, render_node_config
from cis_logging.stack_config import render_stack_filebeat

from .logtools import (
    Filebeat,
    RootShim,
    append_cri,
    append_events,
    count_docs,
    cri_timestamp,
    default_filebeat,
    delete_indices,
    pod_log_file,
    wait_for_count,
    wait_until,
)

pytestmark = pytest.mark.integration

OUTAGE_SECONDS = 30  # the "Elasticsearch stopped for 30 s"
SHIP_TIMEOUT = 90.0


@dataclass(frozen=True)
class Env:
    es_url: str
    filebeat: Path
    workdir: Path


@pytest.fixture(scope="module")
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Env:
    url = os.environ.get("CIS_TEST_ES_URL")
    if url:
        return Env(url, default_filebeat(), tmp_path_factory.mktemp("log-pipeline"))
    stack = request.getfixturevalue("stack")
    bins = getattr(stack, "bins", None) or stack.binaries
    workdir = Path(stack.run_dir) / f"log-pipeline-{uuid.uuid4().hex[:8]}"
    workdir.mkdir(parents=True)
    return Env(stack.es_url, Path(bins.filebeat), workdir)


@dataclass
class Pipeline:
    env: Env
    es: AsyncElasticsearch
    layout: EsLayout
    shim: RootShim
    node: Filebeat
    events: Filebeat
    pods_dir: Path
    events_dir: Path

    def diagnostics(self) -> str:
        return f"--- node filebeat ---\n{self.node.log_tail()}\n--- events filebeat ---\n{self.events.log_tail()}"


def _output(shim: RootShim) -> OutputParams:
    # Short scan and backoff: tests should not wait for production-sized intervals.
    return OutputParams(es_hosts=(shim.url,), scan_interval_seconds=1, backoff_max_seconds=2)


@pytest.fixture(scope="module")
async def pipeline(env: Env) -> AsyncIterator[Pipeline]:
    tag = f"itlp{uuid.uuid4().hex[:8]}"
    layout = EsLayout(logs_prefix=f"{tag}-logs", events_prefix=f"{tag}-events")
    pods_dir, events_dir = env.workdir / "pods", env.workdir / "events"
    pods_dir.mkdir()
    events_dir.mkdir()
    shim = RootShim(env.es_url, log_path=env.workdir / "shim.log")
    node = Filebeat(
        env.filebeat,
        env.workdir / "fb-node",
        render_node_config(
            NodeConfigParams(
                output=_output(shim), pod_logs=PodLogsParams(logs_root=str(pods_dir), index_prefix=layout.logs_prefix)
            )
        ),
    )
    events = Filebeat(
        env.filebeat,
        env.workdir / "fb-events",
        render_events_config(
            EventsConfigParams(
                output=_output(shim), events=EventsParams(events_dir=str(events_dir), index_prefix=layout.events_prefix)
            )
        ),
    )
    es = AsyncElasticsearch(env.es_url, request_timeout=30)
    try:
        await ensure_layout(es, layout)
        shim.start()
        node.start()
        events.start()
        yield Pipeline(env, es, layout, shim, node, events, pods_dir, events_dir)
    finally:
        node.stop()
        events.stop()
        shim.stop()
        for pattern in (layout.logs_pattern, layout.events_pattern):
            await delete_indices(es, pattern)
        for name in (layout.logs_template_name, layout.events_template_name):
            await es.options(ignore_status=404).indices.delete_index_template(name=name)
        await es.close()


def new_instance() -> str:
    return "ci-" + base64.b32encode(uuid.uuid4().bytes).decode().lower()[:20]


@dataclass(frozen=True)
class Pod:
    tenant: str
    instance: str
    uid: str

    @property
    def namespace(self) -> str:
        return f"tenant-{self.tenant}"

    def file(self, root: Path, container: str, run: int = 0) -> Path:
        return pod_log_file(
            root, namespace=self.namespace, pod=self.instance, uid=self.uid, container=container, run=run
        )

    def query(self, **kwargs: Any) -> LogQuery:
        return LogQuery(tenant=self.tenant, instance_id=self.instance, **kwargs)

    def filter(self) -> dict[str, Any]:
        return {"bool": {"filter": [{"term": {"tenant.id": self.tenant}}, {"term": {"instance.id": self.instance}}]}}


def new_pod(tenant: str = "acme") -> Pod:
    return Pod(tenant, new_instance(), str(uuid.uuid4()))


async def shipped(p: Pipeline, pod: Pod, expected: int, within: float = SHIP_TIMEOUT) -> None:
    await wait_for_count(
        p.es, p.layout.logs_pattern, expected, query=pod.filter(), timeout=within, diagnostics=p.diagnostics
    )


async def read(p: Pipeline, query: LogQuery) -> list[LogLine]:
    return list((await fetch_logs(p.es, query, layout=p.layout)).lines)


# ----------------------------------------------------------------------------- configs


def _configs(env: Env) -> dict[str, str]:
    out = OutputParams(es_hosts=("http://127.0.0.1:9200",))
    manifests = render_manifests(ManifestParams(image="registry.example/filebeat-oss:9.3.0"))
    configmap = next(d for d in yaml.safe_load_all(manifests) if d["kind"] == "ConfigMap")
    return {
        "node": render_node_config(NodeConfigParams(output=out)),
        "node-kubernetes": render_node_config(
            NodeConfigParams(
                output=out,
                pod_logs=PodLogsParams(kubernetes_metadata=True, kube_config=str(env.workdir / "kubeconfig")),
            )
        ),
        "events": render_events_config(EventsConfigParams(output=out)),
        "stack": render_stack_filebeat(
            es_url="http://127.0.0.1:9201", events_dir=env.workdir / "ev", pod_logs_dir=env.workdir / "pods"
        ),
        "manifests-configmap": str(configmap["data"]["filebeat.yml"]),
    }


@pytest.mark.parametrize("kind", ["node", "node-kubernetes", "events", "stack", "manifests-configmap"])
def test_rendered_config_passes_filebeat_test_config(env: Env, kind: str) -> None:
    fb = Filebeat(env.filebeat, env.workdir / f"test-config-{kind}", _configs(env)[kind], env={"NODE_NAME": "node-1"})
    result = fb.test_config()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Config OK" in result.stdout


# ----------------------------------------------------------------------------- logs


async def test_logs_are_shipped_and_answer_queries(pipeline: Pipeline) -> None:
    p = pipeline
    pod = new_pod()
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    app = [(t0 + timedelta(milliseconds=10 * i), "stderr" if i == 3 else "stdout", f"app {i}") for i in range(6)]
    append_cri(pod.file(p.pods_dir, "app"), app)
    side = pod.file(p.pods_dir, "side")
    append_cri(side, [(t0 + timedelta(milliseconds=25), "stdout", "side part one, ")], partial=True)
    append_cri(side, [(t0 + timedelta(milliseconds=26), "stdout", "part two")])
    # Not CIS instance pods: a system pod, and an instance-like name outside tenant namespaces.
    append_cri(
        pod_log_file(
            p.pods_dir,
            namespace="kube-system",
            pod="coredns-7db6d8ff4d-x2x9v",
            uid=str(uuid.uuid4()),
            container="coredns",
        ),
        app,
    )
    append_cri(
        pod_log_file(p.pods_dir, namespace="default", pod=new_instance(), uid=str(uuid.uuid4()), container="app"), app
    )
    await shipped(p, pod, 7)

    lines = await read(p, pod.query(container="app"))
    assert [ln.message for ln in lines] == [m for _, _, m in app]
    assert [ln.stream for ln in lines] == [s for _, s, _ in app]
    assert [ln.timestamp for ln in lines] == [cri_timestamp(t) for t, _, _ in app]
    everything = await read(p, pod.query())
    assert [ln.message for ln in everything] == [
        "app 0",
        "app 1",
        "app 2",
        "side part one, part two",
        "app 3",
        "app 4",
        "app 5",
    ]

    tail = await read(p, pod.query(container="app", tail_lines=2))
    assert [ln.message for ln in tail] == ["app 4", "app 5"]
    window = await read(p, pod.query(container="app", since_time=app[1][0], until_time=app[4][0]))
    assert [ln.message for ln in window] == ["app 1", "app 2", "app 3"]
    page = await fetch_logs(p.es, pod.query(container="app", limit_bytes=12), layout=p.layout)
    assert page.text(timestamps=False) == "app 0\napp 1\n"
    page = await fetch_logs(p.es, pod.query(container="app", limit_bytes=9), layout=p.layout)
    assert page.text(timestamps=False) == "app 0\napp" and page.truncated
    page = await fetch_logs(p.es, pod.query(container="app", tail_lines=1, timestamps=True), layout=p.layout)
    assert page.text(timestamps=True) == f"{cri_timestamp(app[5][0])} app 5\n"

    # The container restarts: a new file, 1.log. `previous` answers from 0.log.
    restart = [(t0 + timedelta(seconds=5, milliseconds=i), "stdout", f"run1 {i}") for i in range(2)]
    append_cri(pod.file(p.pods_dir, "app", run=1), restart)
    await shipped(p, pod, 9)
    previous = await read(p, pod.query(container="app", previous=True))
    assert [ln.message for ln in previous] == [m for _, _, m in app]
    current = await read(p, pod.query(container="app", run=1))
    assert [(ln.message, ln.run) for ln in current] == [("run1 0", 1), ("run1 1", 1)]

    # Dropped at the node, not merely filtered at query time.
    total = await count_docs(p.es, p.layout.logs_pattern)
    mine = await count_docs(p.es, p.layout.logs_pattern, {"term": {"tenant.id": "acme"}})
    assert total == mine


async def test_tenant_isolation_and_deleted_instances(pipeline: Pipeline) -> None:
    p = pipeline
    pod = new_pod("acme")
    now = datetime.now(UTC)
    append_cri(pod.file(p.pods_dir, "app"), [(now, "stdout", "acme's secret")])
    await shipped(p, pod, 1)
    intruder = LogQuery(tenant="bravo", instance_id=pod.instance)
    assert await read(p, intruder) == []
    assert not await instance_seen(p.es, "bravo", pod.instance, layout=p.layout)
    assert await instance_seen(p.es, "acme", pod.instance, layout=p.layout)
    # The kubelet removes a deleted pod's directory; its logs stay answerable.
    shutil.rmtree(pod.file(p.pods_dir, "app").parents[1])
    assert [ln.message for ln in await read(p, pod.query())] == ["acme's secret"]


async def test_follow_delivers_appended_lines(pipeline: Pipeline) -> None:
    p = pipeline
    pod = new_pod()
    path = pod.file(p.pods_dir, "app")
    start = datetime.now(UTC)
    append_cri(path, [(start, "stdout", "before 0"), (start + timedelta(milliseconds=1), "stdout", "before 1")])
    await shipped(p, pod, 2)
    got: list[str] = []

    async def consume() -> None:
        async for line in follow_logs(
            p.es, pod.query(container="app", tail_lines=1), layout=p.layout, poll_interval=0.5
        ):
            got.append(line.message)

    task = asyncio.create_task(consume(), name="follow-consumer")
    try:
        await wait_until(lambda: _ready(got, 1), timeout=30, what="the tail line")
        later = datetime.now(UTC)
        for i in range(3):
            append_cri(path, [(later + timedelta(milliseconds=i), "stdout", f"after {i}")])
            await asyncio.sleep(0.3)
        await wait_until(lambda: _ready(got, 4), timeout=SHIP_TIMEOUT, what="followed lines", diagnostics=p.diagnostics)
        await asyncio.sleep(2)  # nothing is delivered twice
        assert got == ["before 1", "after 0", "after 1", "after 2"]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def _ready(got: list[str], n: int) -> bool:
    return len(got) >= n


async def test_es_outage_and_registry_loss_every_line_exactly_once(pipeline: Pipeline) -> None:
    """Elasticsearch unreachable for OUTAGE_SECONDS while lines keep coming, Filebeat
    killed (SIGKILL: no chance to save progress) during the outage, and finally its
    registry lost so that every line is sent again."""
    p = pipeline
    pod = new_pod()
    path = pod.file(p.pods_dir, "app")
    base = datetime.now(UTC) - timedelta(minutes=1)

    def batch(first: int, n: int) -> list[tuple[datetime, str, str]]:
        return [(base + timedelta(milliseconds=i), "stdout", f"line {i:04d}") for i in range(first, first + n)]

    append_cri(path, batch(0, 20))
    await shipped(p, pod, 20)
    p.shim.stop()
    try:
        append_cri(path, batch(20, 15))
        await asyncio.sleep(OUTAGE_SECONDS / 2)
        p.node.stop(kill=True)
        p.node.start()
        append_cri(path, batch(35, 15))
        await asyncio.sleep(OUTAGE_SECONDS / 2)
    finally:
        p.shim.start()
    await shipped(p, pod, 50)
    await asyncio.sleep(3)  # late re-sends would show up now
    assert await count_docs(p.es, p.layout.logs_pattern, pod.filter()) == 50
    lines = [ln.message for ln in await read(p, pod.query(limit=100))]
    assert lines == [f"line {i:04d}" for i in range(50)]

    # Registry lost: Filebeat re-reads and re-sends all 50; the ids make them no-ops.
    p.node.stop()
    p.node.wipe_registry()
    p.node.start()
    append_cri(path, batch(50, 1))
    await shipped(p, pod, 51)  # the new line is behind the 50 re-sent ones in the file
    await asyncio.sleep(3)
    assert await count_docs(p.es, p.layout.logs_pattern, pod.filter()) == 51


# ----------------------------------------------------------------------------- events


def _event(instance: str, seq: int, kind: str, ts: str) -> dict[str, Any]:
    return {
        "@timestamp": ts,
        "event": {"id": f"{instance}-{seq}", "kind": kind, "seq": seq},
        "instance": {
            "id": instance,
            "uid": f"uid-{instance}",
            "tenant": "acme",
            "region": "region-a",
            "cluster": "region-a",
            "cpu": "0.5",
            "memory_gib": "1",
            "started_at": None,
            "stopped_at": None,
            "reason": None,
        },
    }


async def test_events_one_document_per_id_even_after_registry_wipe(pipeline: Pipeline) -> None:
    p = pipeline
    inst = new_instance()
    events = [
        _event(inst, 1, "instance.created", "2026-10-31T23:59:59.999Z"),
        _event(inst, 2, "instance.scheduled", "2026-11-01T00:00:00.000Z"),
        _event(inst, 3, "instance.started", "2026-11-01T00:00:01.250Z"),
    ]
    path = p.events_dir / "lifecycle-2026-11-01.ndjson"
    # A controller crash replays the last event: the same id twice in the file.
    append_events(path, [*events, events[-1]])
    only = {"term": {"instance.id": inst}}
    await wait_for_count(p.es, p.layout.events_pattern, 3, query=only, timeout=SHIP_TIMEOUT, diagnostics=p.diagnostics)
    resp = await p.es.search(index=p.layout.events_pattern, query=only, size=10, sort=[{"event.seq": "asc"}])
    hits = resp["hits"]["hits"]
    assert [h["_id"] for h in hits] == [e["event"]["id"] for e in events]
    assert [h["_source"]["event"]["id"] for h in hits] == [h["_id"] for h in hits]
    assert [h["_index"] for h in hits] == [
        f"{p.layout.events_prefix}-2026.10",
        f"{p.layout.events_prefix}-2026.11",
        f"{p.layout.events_prefix}-2026.11",
    ]

    # Lose Filebeat's registry: it re-reads every file from the start.
    p.events.stop()
    p.events.wipe_registry()
    p.events.start()
    sentinel = _event(inst, 4, "instance.running", "2026-11-01T00:01:00.000Z")
    append_events(path, [sentinel])
    # The sentinel is behind every re-sent line in the same file.
    await wait_for_count(p.es, p.layout.events_pattern, 4, query=only, timeout=SHIP_TIMEOUT, diagnostics=p.diagnostics)
    await asyncio.sleep(2)
    assert await count_docs(p.es, p.layout.events_pattern, only) == 4
